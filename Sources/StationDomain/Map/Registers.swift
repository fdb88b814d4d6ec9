/// A read-only view of a run of registers with the map's word order and signedness.
public struct Registers: Sendable {
    public let values: [UInt16]
    public init(_ values: [UInt16]) { self.values = values }

    public var count: Int { values.count }
    public func u16(_ offset: Int) -> UInt16 { values[offset] }
    /// Two's complement.
    public func s16(_ offset: Int) -> Int16 { Int16(bitPattern: values[offset]) }
    /// Two registers, high word first.
    public func u32(_ offset: Int) -> UInt32 { UInt32(values[offset]) << 16 | UInt32(values[offset + 1]) }
    /// Two characters per register, first character in the high byte, NUL padded.
    /// Non-printable bytes are rejected (nil), so garbage never becomes an id.
    public func ascii(_ offset: Int, registers: Int) -> String? {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(registers * 2)
        for r in values[offset ..< offset + registers] {
            bytes.append(UInt8(r >> 8))
            bytes.append(UInt8(r & 0xFF))
        }
        if let nul = bytes.firstIndex(of: 0) {
            // Everything after the first NUL must be NUL too (padding).
            guard bytes[nul...].allSatisfy({ $0 == 0 }) else { return nil }
            bytes.removeSubrange(nul...)
        }
        guard bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func encodeASCII(_ s: String, registers: Int) -> [UInt16] {
        var bytes = Array(s.utf8.prefix(registers * 2))
        bytes += Array(repeating: 0, count: registers * 2 - bytes.count)
        return (0 ..< registers).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
    }
    public static func encodeU32(_ v: UInt32) -> [UInt16] { [UInt16(v >> 16), UInt16(v & 0xFFFF)] }
}
