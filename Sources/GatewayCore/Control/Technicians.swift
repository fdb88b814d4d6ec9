import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The technicians allowed to act on the cabinet through the local control API (maintenance unlock,
/// taking a slot out of or back into service).
///
/// File format (`control.technicians_file`, 0640 root:swapgate): one `name:sha256-hex` per line, where
/// the hex is SHA-256 of the technician's credential (`printf '%s' SECRET | sha256sum`); `#` starts a
/// comment. The daemon keeps only the digests; a credential is never logged, stored or echoed.
/// The file is read again on every check, so adding or removing a technician needs no restart.
public struct Technicians: Sendable {
    public let path: String?

    public init(path: String?) { self.path = path }

    public enum Verdict: Sendable, Equatable {
        case accepted
        case refused(String)
    }

    /// Parses the file text: name → digest bytes. Malformed lines are reported, not silently skipped.
    public static func parse(_ text: String) throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first?
                .trimmingWhitespaces() ?? ""
            if line.isEmpty { continue }
            let parts = line.split(separator: ":", maxSplits: 1).map { $0.trimmingWhitespaces() }
            guard parts.count == 2, !parts[0].isEmpty, let digest = hexBytes(parts[1]), digest.count == 32 else {
                throw TechniciansError(message: "line \(i + 1): expected name:sha256-hex (64 hex digits)")
            }
            out[parts[0]] = digest
        }
        return out
    }

    /// Checks a technician's credential against the file (constant-time comparison of the digests).
    public func verify(name: String, credential: String) -> Verdict {
        guard let path else { return .refused("no technicians file is configured (control.technicians_file)") }
        guard let data = FileManager.default.contents(atPath: path) else { return .refused("cannot read the technicians file") }
        let table: [String: [UInt8]]
        do { table = try Self.parse(String(decoding: data, as: UTF8.self)) } catch { return .refused("technicians file: \(error)") }
        guard !credential.isEmpty else { return .refused("no credential given") }
        let given = OpenSSLDigest.sha256(credential.utf8)
        // Compare against a dummy digest for unknown names too, so timing does not reveal who exists.
        let expected = table[name] ?? [UInt8](repeating: 0, count: 32)
        var diff: UInt8 = 0
        for i in 0 ..< 32 { diff |= given[i] ^ expected[i] }
        return (diff == 0 && table[name] != nil) ? .accepted : .refused("unknown technician or wrong credential")
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        let chars = Array(s.lowercased().utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(chars.count / 2)
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0") ... UInt8(ascii: "9"): return c - UInt8(ascii: "0")
            case UInt8(ascii: "a") ... UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}

public struct TechniciansError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
