// What GatewayCore used from full Foundation, written out so the daemon links FoundationEssentials alone (full
// Foundation brings ICU, 32 MiB: see docs/board-footprint.md). Each gives what the Foundation call gave.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes all of `text` to file descriptor `fd` with write(2), unbuffered (what `FileHandle.write` did: a log line
/// reaches journald whole, as soon as it is written). Gives up silently on an error other than EINTR.
public func writeAll(_ text: String, to fd: Int32) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
        if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
    }
}

/// `(path as NSString).deletingLastPathComponent` for a file path: "" for a bare name, "/" at the root.
/// Runs of slashes count as one, as there ("/var/lib//x/y" → "/var/lib/x").
func parentDirectory(_ path: String) -> String {
    var collapsed = ""
    for c in path where !(c == "/" && collapsed.last == "/") { collapsed.append(c) }
    var p = Substring(collapsed)
    while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
    guard let slash = p.lastIndex(of: "/") else { return "" }
    if slash == p.startIndex { return "/" }
    var parent = p[..<slash]
    while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
    return String(parent)
}

/// Lowercase hex, two digits a byte (what `map { String(format: "%02x", $0) }.joined()` gave).
func lowercaseHex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0xF)]) }
    return String(decoding: out, as: UTF8.self)
}

extension StringProtocol {
    /// `trimmingCharacters(in: .whitespaces)`: tab and the Unicode space separators (White_Space minus the newlines,
    /// plus U+200B: what CharacterSet.whitespaces holds, checked over every scalar).
    func trimmingWhitespaces() -> String {
        func drop(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x0A ... 0x0D, 0x85, 0x2028, 0x2029: return false
            case 0x200B: return true   // ZERO WIDTH SPACE: in CoreFoundation's set, though not White_Space
            default: return u.properties.isWhitespace
            }
        }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[first ... last])
        return String(kept)
    }
}
