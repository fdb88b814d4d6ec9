/// ABS's Ed25519 public keys, by key id (`kid`). Several keys may be valid at once (rotation).
public struct KeyRing: Sendable {
    /// kid → the key, made once at init (OpenSSL's EVP_PKEY; shared by every verification, from any thread).
    let publicKeys: [String: Ed25519PublicKey]

    public enum KeyError: Error, CustomStringConvertible, Equatable {
        case emptyKid
        case invalidKid(String)
        case invalidKey(kid: String, reason: String)

        public var description: String {
            switch self {
            case .emptyKid: return "ABS key ring: a key has an empty kid"
            case .invalidKid(let kid): return "ABS key ring: kid \(kid.debugDescription) must be 1…128 printable ASCII characters"
            case .invalidKey(let kid, let reason): return "ABS key ring: key \(kid.debugDescription): \(reason)"
            }
        }
    }

    /// `keys`: kid → the key, either base64 of the raw 32-byte Ed25519 public key, or a PEM
    /// `-----BEGIN PUBLIC KEY-----` block (an Ed25519 SubjectPublicKeyInfo). Surrounding whitespace
    /// is ignored. Throws `KeyError`, naming the kid, for anything else.
    public init(keys: [String: String]) throws {
        var ring: [String: Ed25519PublicKey] = [:]
        for (kid, text) in keys {
            if kid.isEmpty { throw KeyError.emptyKid }
            guard Validation.isPrintableASCII(kid, maxLength: 128) else { throw KeyError.invalidKid(kid) }
            let bytes = try Self.parseKey(text, kid: kid)
            if Self.isSmallOrder(bytes) {
                // Neither OpenSSL nor BoringSSL refuses these, and under such a key R = a small-order point, S = 0
                // verifies for many messages: anyone could sign ABS commands. No real key is one; a ring holding one
                // is a broken configuration and is refused like any other bad key.
                throw KeyError.invalidKey(kid: kid, reason: "a small-order point (a weak key under which anyone can forge signatures)")
            }
            do {
                ring[kid] = try Ed25519PublicKey(rawRepresentation: bytes)
            } catch {
                throw KeyError.invalidKey(kid: kid, reason: "not an Ed25519 public key (\(error))")
            }
        }
        publicKeys = ring
    }

    /// The kids in the ring, sorted.
    public var kids: [String] { publicKeys.keys.sorted() }

    func publicKey(kid: String) -> Ed25519PublicKey? {
        publicKeys[kid]
    }

    /// The y coordinates (little-endian, sign bit cleared) of every point of order 1, 2, 4 or 8, in canonical and
    /// non-canonical (y ≥ p) encodings: identity (y = 1, and p + 1), order 2 (y = p − 1), order 4 (y = 0, and p), order 8
    /// (two y values). With the sign bit either way that covers every small-order encoding (libsodium's list).
    static let smallOrderY: [[UInt8]] = {
        func le(_ first: [UInt8], fill: UInt8, last: UInt8) -> [UInt8] {
            first + [UInt8](repeating: fill, count: 31 - first.count) + [last]
        }
        return [
            le([0x00], fill: 0x00, last: 0x00),                       // y = 0 (order 4)
            le([0x01], fill: 0x00, last: 0x00),                       // y = 1 (identity)
            [0x26, 0xE8, 0x95, 0x8F, 0xC2, 0xB2, 0x27, 0xB0, 0x45, 0xC3, 0xF4, 0x89, 0xF2, 0xEF, 0x98, 0xF0,
             0xD5, 0xDF, 0xAC, 0x05, 0xD3, 0xC6, 0x33, 0x39, 0xB1, 0x38, 0x02, 0x88, 0x6D, 0x53, 0xFC, 0x05],   // order 8
            [0xC7, 0x17, 0x6A, 0x70, 0x3D, 0x4D, 0xD8, 0x4F, 0xBA, 0x3C, 0x0B, 0x76, 0x0D, 0x10, 0x67, 0x0F,
             0x2A, 0x20, 0x53, 0xFA, 0x2C, 0x39, 0xCC, 0xC6, 0x4E, 0xC7, 0xFD, 0x77, 0x92, 0xAC, 0x03, 0x7A],   // order 8
            le([0xEC], fill: 0xFF, last: 0x7F),                       // y = p − 1 (order 2)
            le([0xED], fill: 0xFF, last: 0x7F),                       // y = p ≡ 0 (order 4, non-canonical)
            le([0xEE], fill: 0xFF, last: 0x7F),                       // y = p + 1 ≡ 1 (identity, non-canonical)
        ]
    }()

    /// Whether a 32-byte key encodes a point of small order (any sign bit).
    static func isSmallOrder(_ key: [UInt8]) -> Bool {
        guard key.count == 32 else { return false }
        var y = key
        y[31] &= 0x7F
        return smallOrderY.contains(y)
    }

    /// DER of an Ed25519 SubjectPublicKeyInfo up to the key: SEQUENCE { SEQUENCE { OID 1.3.101.112 },
    /// BIT STRING (0 unused bits) } — RFC 8410. The 32 key bytes follow.
    private static let spkiPrefix: [UInt8] = [0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]

    static func parseKey(_ text: String, kid: String) throws -> [UInt8] {
        let trimmed = text.trimmingASCIIWhitespace()
        if trimmed.hasPrefix("-----BEGIN") {
            // Split on scalars: "\r\n" is one Character.
            let lines = trimmed.unicodeScalars.split(whereSeparator: { $0 == "\n" || $0 == "\r" })
                .map { String(String.UnicodeScalarView($0)).trimmingASCIIWhitespace() }
            guard lines.first == "-----BEGIN PUBLIC KEY-----" else {
                throw KeyError.invalidKey(kid: kid, reason: "PEM must be a \"-----BEGIN PUBLIC KEY-----\" block (found \(lines.first ?? ""))")
            }
            guard let endIndex = lines.firstIndex(of: "-----END PUBLIC KEY-----"), endIndex == lines.count - 1 else {
                throw KeyError.invalidKey(kid: kid, reason: "PEM has no \"-----END PUBLIC KEY-----\" line at its end")
            }
            let body = lines[1..<endIndex].joined()
            guard let der = Base64.decode(body) else {
                throw KeyError.invalidKey(kid: kid, reason: "PEM body is not base64")
            }
            guard der.count == spkiPrefix.count + 32, Array(der.prefix(spkiPrefix.count)) == spkiPrefix else {
                throw KeyError.invalidKey(kid: kid, reason: "PEM is not an Ed25519 SubjectPublicKeyInfo (RFC 8410, 44 bytes of DER; got \(der.count))")
            }
            return Array(der.suffix(32))
        }
        guard let bytes = Base64.decode(trimmed) else {
            throw KeyError.invalidKey(kid: kid, reason: "neither base64 of a raw 32-byte key nor a PEM public key")
        }
        guard bytes.count == 32 else {
            throw KeyError.invalidKey(kid: kid, reason: "a raw Ed25519 public key is 32 bytes, this one is \(bytes.count)")
        }
        return bytes
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces, tabs, CR and LF (by scalar: "\r\n" is one Character).
    func trimmingASCIIWhitespace() -> String {
        let scalars = Array(unicodeScalars)
        func isSpace(_ u: Unicode.Scalar) -> Bool { u == " " || u == "\t" || u == "\n" || u == "\r" }
        guard let first = scalars.firstIndex(where: { !isSpace($0) }),
              let last = scalars.lastIndex(where: { !isSpace($0) }) else { return "" }
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars[first...last])
        return String(view)
    }
}
