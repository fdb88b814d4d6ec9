// A strict pull parser for RFC 8259 JSON over raw bytes.
//
// Why not JSONDecoder or JSONSerialization: a city snapshot is 30–40 MB of JSON, and the station
// must refuse rather than guess. The reader walks the bytes once, builds no intermediate tree,
// and knows exactly what each value was: `1` is not `true`, `1.0` is not an integer, a string
// is valid UTF-8 or the document is refused. Nesting is capped so hostile input cannot exhaust
// the stack.
//
// Syntax errors throw `JSONSyntaxError`. Type mismatches do not throw: the `…OrSkip` readers
// skip the value and return nil, so the caller can remember the first problem with a field and
// still read the rest of the document (the verifier reports problems in a fixed order).

struct JSONSyntaxError: Error {
    let message: String
}

enum JSONKind {
    case object, array, string, number, bool, null
}

struct JSONReader {
    static let maxDepth = 32

    let buf: UnsafeBufferPointer<UInt8>
    private(set) var pos = 0
    private var depth = 0
    /// The keys of every object still open, innermost last (hash and key), and where each object's keys start:
    /// a key twice in one object is refused at every level, in values the caller reads and in values it skips.
    private var openKeys: [(hash: Int, key: String)] = []
    private var keyStarts: [Int] = []
    /// Objects with many keys switch to a set (by depth) so a hostile object cannot make the check quadratic.
    private var largeObjects: [Int: Set<String>] = [:]
    static let linearKeyLimit = 32

    init(_ buf: UnsafeBufferPointer<UInt8>) {
        self.buf = buf
    }

    private func error(_ what: String) -> JSONSyntaxError {
        JSONSyntaxError(message: "not valid JSON: \(what) at byte \(pos)")
    }

    private mutating func skipWhitespace() {
        while pos < buf.count {
            switch buf[pos] {
            case 0x20, 0x09, 0x0A, 0x0D: pos += 1
            default: return
            }
        }
    }

    /// The kind of the next value (after whitespace); throws at the end of input or on a byte
    /// that cannot start a value.
    mutating func peekKind() throws(JSONSyntaxError) -> JSONKind {
        skipWhitespace()
        guard pos < buf.count else { throw error("unexpected end of input") }
        switch buf[pos] {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        default: throw error("unexpected character")
        }
    }

    /// After the top-level value: only whitespace may follow.
    mutating func finish() throws(JSONSyntaxError) {
        skipWhitespace()
        guard pos == buf.count else { throw error("trailing characters after the value") }
    }

    // MARK: Objects and arrays

    /// Consumes `{`. Then call `nextKey` until it returns nil.
    mutating func beginObject() throws(JSONSyntaxError) {
        guard try peekKind() == .object else { throw error("expected an object") }
        pos += 1
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
        keyStarts.append(openKeys.count)
    }

    /// Remembers `key` in the innermost open object; throws if it is already there.
    private mutating func noteKey(_ key: String) throws(JSONSyntaxError) {
        let start = keyStarts.last ?? 0
        let hash = key.hashValue
        if let set = largeObjects[keyStarts.count] {
            guard !set.contains(key) else { throw duplicate(key) }
            largeObjects[keyStarts.count]!.insert(key)
            return
        }
        for i in start ..< openKeys.count where openKeys[i].hash == hash && openKeys[i].key == key { throw duplicate(key) }
        openKeys.append((hash, key))
        if openKeys.count - start > Self.linearKeyLimit {
            largeObjects[keyStarts.count] = Set(openKeys[start...].map(\.key))
        }
    }

    private func duplicate(_ key: String) -> JSONSyntaxError {
        var quoted = "\""
        for ch in key.unicodeScalars.prefix(64) { quoted += ch.value < 0x20 || ch == "\"" || ch == "\\" ? ch.escaped(asASCII: true) : String(ch) }
        return JSONSyntaxError(message: "the key \(quoted)\" appears twice in an object")
    }

    private mutating func endObject() {
        if let start = keyStarts.popLast() {
            largeObjects[keyStarts.count + 1] = nil
            openKeys.removeSubrange(start...)
        }
    }

    /// The next key (its value is to be read next), or nil after the closing `}`.
    /// `first` must start true for each object.
    mutating func nextKey(first: inout Bool) throws(JSONSyntaxError) -> String? {
        skipWhitespace()
        guard pos < buf.count else { throw error("unterminated object") }
        if buf[pos] == UInt8(ascii: "}") {
            // `{}` or a complete member before it; `{"a":1,}` is caught below.
            pos += 1
            depth -= 1
            endObject()
            return nil
        }
        if !first {
            guard buf[pos] == UInt8(ascii: ",") else { throw error("expected ',' or '}' in an object") }
            pos += 1
            skipWhitespace()
        }
        first = false
        guard pos < buf.count, buf[pos] == UInt8(ascii: "\"") else { throw error("expected a string key") }
        let key = try scanString()
        try noteKey(key)
        skipWhitespace()
        guard pos < buf.count, buf[pos] == UInt8(ascii: ":") else { throw error("expected ':' after a key") }
        pos += 1
        return key
    }

    /// Consumes `[`. Then call `nextElement` until it returns false.
    mutating func beginArray() throws(JSONSyntaxError) {
        guard try peekKind() == .array else { throw error("expected an array") }
        pos += 1
        depth += 1
        guard depth <= Self.maxDepth else { throw error("nesting deeper than \(Self.maxDepth)") }
    }

    /// True when another element follows (read it next); false after the closing `]`.
    mutating func nextElement(first: inout Bool) throws(JSONSyntaxError) -> Bool {
        skipWhitespace()
        guard pos < buf.count else { throw error("unterminated array") }
        if buf[pos] == UInt8(ascii: "]") {
            pos += 1
            depth -= 1
            return false
        }
        if !first {
            guard buf[pos] == UInt8(ascii: ",") else { throw error("expected ',' or ']' in an array") }
            pos += 1
        }
        first = false
        // A value must follow (`[1,]` fails in the value reader).
        return true
    }

    /// Skips one value of any kind, checking its syntax.
    mutating func skipValue() throws(JSONSyntaxError) {
        switch try peekKind() {
        case .object:
            try beginObject()
            var first = true
            while try nextKey(first: &first) != nil { try skipValue() }
        case .array:
            try beginArray()
            var first = true
            while try nextElement(first: &first) { try skipValue() }
        case .string:
            try skipString()
        case .number:
            _ = try scanNumber()
        case .bool:
            _ = try scanBool()
        case .null:
            try scanNull()
        }
    }

    // MARK: Typed readers (nil = the value had another type and was skipped)

    mutating func stringOrSkip() throws(JSONSyntaxError) -> String? {
        guard try peekKind() == .string else { try skipValue(); return nil }
        return try scanString()
    }

    /// Calls `body` with the bytes of a string value after unescaping (no UTF-8 check), and
    /// returns its result: for base64 text, which is then decoded straight from the input buffer
    /// without a copy when it has no escapes (the usual case). nil when the value is not a string.
    mutating func withStringBytesOrSkip<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) throws(JSONSyntaxError) -> R? {
        guard try peekKind() == .string else { try skipValue(); return nil }
        pos += 1
        let start = pos
        while pos < buf.count {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                let result = body(UnsafeBufferPointer(rebasing: buf[start..<pos]))
                pos += 1
                return result
            }
            if c == UInt8(ascii: "\\") {
                let bytes = try scanEscaped(from: start)
                return bytes.withUnsafeBufferPointer { body($0) }
            }
            if c < 0x20 { throw error("control character in a string") }
            pos += 1
        }
        throw error("unterminated string")
    }

    /// An integer literal (no fraction, no exponent) that fits in Int64.
    mutating func int64OrSkip() throws(JSONSyntaxError) -> Int64? {
        guard try peekKind() == .number else { try skipValue(); return nil }
        let (start, end, integral) = try scanNumber()
        guard integral else { return nil }
        var i = start
        let negative = buf[i] == UInt8(ascii: "-")
        if negative { i += 1 }
        var v: Int64 = 0
        while i < end {
            let d = Int64(buf[i] - 0x30)
            let (m, o1) = v.multipliedReportingOverflow(by: 10)
            let (r, o2) = negative ? m.subtractingReportingOverflow(d) : m.addingReportingOverflow(d)
            if o1 || o2 { return nil }
            v = r
            i += 1
        }
        return v
    }

    /// Any number literal that is finite as a Double.
    mutating func doubleOrSkip() throws(JSONSyntaxError) -> Double? {
        guard try peekKind() == .number else { try skipValue(); return nil }
        let (start, end, _) = try scanNumber()
        let text = String(decoding: UnsafeBufferPointer(rebasing: buf[start..<end]), as: UTF8.self)
        guard let v = Double(text), v.isFinite else { return nil }
        return v
    }

    mutating func boolOrSkip() throws(JSONSyntaxError) -> Bool? {
        guard try peekKind() == .bool else { try skipValue(); return nil }
        return try scanBool()
    }

    /// True (and consumed) when the next value is `null`.
    mutating func consumeNull() throws(JSONSyntaxError) -> Bool {
        guard try peekKind() == .null else { return false }
        try scanNull()
        return true
    }

    // MARK: Scanners (positioned on the first byte of the value)

    private mutating func scanString() throws(JSONSyntaxError) -> String {
        pos += 1
        let start = pos
        var ascii = true
        while pos < buf.count {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") {
                let slice = UnsafeBufferPointer(rebasing: buf[start..<pos])
                pos += 1
                if ascii { return String(decoding: slice, as: UTF8.self) }
                guard let s = String(validating: slice, as: UTF8.self) else {
                    pos = start
                    throw error("invalid UTF-8 in a string")
                }
                return s
            }
            if c == UInt8(ascii: "\\") {
                let bytes = try scanEscaped(from: start)
                guard let s = String(validating: bytes, as: UTF8.self) else {
                    throw error("invalid UTF-8 in a string")
                }
                return s
            }
            if c < 0x20 { throw error("control character in a string") }
            if c >= 0x80 { ascii = false }
            pos += 1
        }
        throw error("unterminated string")
    }

    private mutating func skipString() throws(JSONSyntaxError) {
        _ = try scanString()
    }

    /// Continues a string that has an escape at `pos`; `start` is its first content byte.
    /// Returns the unescaped bytes and leaves `pos` after the closing quote.
    private mutating func scanEscaped(from start: Int) throws(JSONSyntaxError) -> [UInt8] {
        var out = Array(UnsafeBufferPointer(rebasing: buf[start..<pos]))
        while pos < buf.count {
            let c = buf[pos]
            if c == UInt8(ascii: "\"") { pos += 1; return out }
            if c < 0x20 { throw error("control character in a string") }
            if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
            guard pos + 1 < buf.count else { break }
            let e = buf[pos + 1]
            pos += 2
            switch e {
            case UInt8(ascii: "\""): out.append(0x22)
            case UInt8(ascii: "\\"): out.append(0x5C)
            case UInt8(ascii: "/"): out.append(0x2F)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800...0xDBFF).contains(scalar) {
                    guard pos + 1 < buf.count, buf[pos] == UInt8(ascii: "\\"), buf[pos + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate escape")
                    }
                    pos += 2
                    let low = try hex4()
                    guard (0xDC00...0xDFFF).contains(low) else { throw error("unpaired surrogate escape") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00...0xDFFF).contains(scalar) {
                    throw error("unpaired surrogate escape")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out.append(contentsOf: UTF8.encode(u)!)
            default:
                pos -= 1
                throw error("invalid escape")
            }
        }
        throw error("unterminated string")
    }

    private mutating func hex4() throws(JSONSyntaxError) -> UInt32 {
        guard pos + 4 <= buf.count else { throw error("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = buf[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; returns its range and whether it is an
    /// integer literal.
    private mutating func scanNumber() throws(JSONSyntaxError) -> (Int, Int, Bool) {
        let start = pos
        var integral = true
        func isDigit(_ i: Int) -> Bool { i < buf.count && buf[i] >= 0x30 && buf[i] <= 0x39 }
        if buf[pos] == UInt8(ascii: "-") { pos += 1 }
        guard isDigit(pos) else { throw error("invalid number") }
        if buf[pos] == UInt8(ascii: "0") {
            pos += 1
        } else {
            while isDigit(pos) { pos += 1 }
        }
        if pos < buf.count && buf[pos] == UInt8(ascii: ".") {
            integral = false
            pos += 1
            guard isDigit(pos) else { throw error("invalid number") }
            while isDigit(pos) { pos += 1 }
        }
        if pos < buf.count && (buf[pos] == UInt8(ascii: "e") || buf[pos] == UInt8(ascii: "E")) {
            integral = false
            pos += 1
            if pos < buf.count && (buf[pos] == UInt8(ascii: "+") || buf[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard isDigit(pos) else { throw error("invalid number") }
            while isDigit(pos) { pos += 1 }
        }
        return (start, pos, integral)
    }

    private mutating func scanLiteral(_ word: StaticString) throws(JSONSyntaxError) {
        let n = word.utf8CodeUnitCount
        guard pos + n <= buf.count else { throw error("invalid literal") }
        let w = word.utf8Start
        for k in 0..<n where buf[pos + k] != w[k] { throw error("invalid literal") }
        pos += n
    }

    private mutating func scanBool() throws(JSONSyntaxError) -> Bool {
        if buf[pos] == UInt8(ascii: "t") {
            try scanLiteral("true")
            return true
        }
        try scanLiteral("false")
        return false
    }

    private mutating func scanNull() throws(JSONSyntaxError) {
        try scanLiteral("null")
    }
}
