// Strict, linear-time base64 (RFC 4648 §4, the standard alphabet) over raw bytes.
//
// Used for the envelope's "payload" (up to tens of megabytes) and "sig", and for keys. It works
// on bytes so that a 50 MB payload is never turned into a Swift String first, and it rejects
// anything that is not canonical base64: characters outside the alphabet, whitespace, padding
// in the wrong place, and non-zero bits after the last full byte. Padding may be omitted.

enum Base64 {
    private static let alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// 0…63 for alphabet characters, 0xFF for everything else.
    private static let table: [UInt8] = {
        var t = [UInt8](repeating: 0xFF, count: 256)
        for (i, c) in alphabet.enumerated() { t[Int(c)] = UInt8(i) }
        return t
    }()

    /// The decoded bytes, or nil when `input` is not canonical base64.
    static func decode(_ input: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        var n = input.count
        // At most two '=' at the end; padded input must be a whole number of 4-character groups.
        var padding = 0
        while n > 0 && padding < 2 && input[n - 1] == UInt8(ascii: "=") { n -= 1; padding += 1 }
        if padding > 0 && input.count % 4 != 0 { return nil }
        let remainder = n % 4
        if remainder == 1 { return nil }
        if padding > 0 && (4 - remainder) % 4 != padding { return nil }
        let fullGroups = n / 4
        let outCount = fullGroups * 3 + (remainder == 0 ? 0 : remainder - 1)

        return table.withUnsafeBufferPointer { t -> [UInt8]? in
            var ok = true
            let out = [UInt8](unsafeUninitializedCapacity: outCount) { buffer, initialized in
                var i = 0, o = 0
                for _ in 0..<fullGroups {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                    let c = t[Int(input[i + 2])], d = t[Int(input[i + 3])]
                    if (a | b | c | d) & 0xC0 != 0 { ok = false; break }
                    let v = UInt32(a) << 18 | UInt32(b) << 12 | UInt32(c) << 6 | UInt32(d)
                    buffer[o] = UInt8(truncatingIfNeeded: v >> 16)
                    buffer[o + 1] = UInt8(truncatingIfNeeded: v >> 8)
                    buffer[o + 2] = UInt8(truncatingIfNeeded: v)
                    i += 4; o += 3
                }
                if ok && remainder == 2 {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])]
                    if (a | b) & 0xC0 != 0 || b & 0x0F != 0 { ok = false } else {
                        buffer[o] = a << 2 | b >> 4
                        o += 1
                    }
                } else if ok && remainder == 3 {
                    let a = t[Int(input[i])], b = t[Int(input[i + 1])], c = t[Int(input[i + 2])]
                    if (a | b | c) & 0xC0 != 0 || c & 0x03 != 0 { ok = false } else {
                        buffer[o] = a << 2 | b >> 4
                        buffer[o + 1] = (b & 0x0F) << 4 | c >> 2
                        o += 2
                    }
                }
                // On failure, zero-fill so the discarded array is fully initialised.
                if !ok {
                    for k in 0..<outCount { buffer[k] = 0 }
                    o = outCount
                }
                initialized = o
            }
            return ok ? out : nil
        }
    }

    static func decode(_ input: [UInt8]) -> [UInt8]? {
        input.withUnsafeBufferPointer { decode($0) }
    }

    static func decode(_ input: String) -> [UInt8]? {
        decode(Array(input.utf8))
    }
}
