import COpenSSL

// The only Swift that touches OpenSSL's libcrypto (COpenSSL): Ed25519 verification of ABS commands, and SHA-256 for
// the daemon's few digests. libcrypto is on the board anyway (libmosquitto links it): one crypto stack (issue 13).

/// An Ed25519 public key (RFC 8032): the raw 32 bytes, and OpenSSL's EVP_PKEY of them, made once.
///
/// Verification is safe from several threads at once: the EVP_PKEY is only read (OpenSSL 3 shares a key between
/// threads for read-only operations), and each verification has its own EVP_MD_CTX.
///
/// What OpenSSL 3 accepts (checked by Ed25519OpenSSLTests, the same as swift-crypto/BoringSSL before it): any 32 bytes
/// make a key (no point check at creation); a key that is not a curve point verifies nothing; S must be canonical
/// (S < L); the signature is exactly 64 bytes. A key of small order is not refused: a crafted signature (R of small
/// order, S = 0) verifies under it for any message. No real key is such a point (a secret scalar is clamped to a
/// multiple of 8 with bit 254 set), so only a broken configuration could have one.
public struct Ed25519PublicKey: Sendable {
    public static let byteCount = 32
    public static let signatureByteCount = 64

    /// The 32 key bytes, as given.
    public let rawRepresentation: [UInt8]
    private let key: PKey

    public enum KeyError: Error, Equatable, CustomStringConvertible {
        /// Not 32 bytes.
        case wrongLength(Int)
        /// libcrypto refused the bytes (its message).
        case refused(String)

        public var description: String {
            switch self {
            case .wrongLength(let n): return "an Ed25519 public key is 32 bytes, got \(n)"
            case .refused(let message): return "OpenSSL refused the key: \(message)"
            }
        }
    }

    public init(rawRepresentation bytes: some Collection<UInt8>) throws(KeyError) {
        let raw = Array(bytes)
        guard raw.count == Self.byteCount else { throw .wrongLength(raw.count) }
        let pkey = raw.withUnsafeBufferPointer { EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, $0.baseAddress, $0.count) }
        guard let pkey else { throw .refused(OpenSSLErrors.take()) }
        rawRepresentation = raw
        key = PKey(pkey)
    }

    /// True only when `signature` (exactly 64 bytes) is this key's Ed25519 signature of exactly `message`.
    public func isValidSignature(_ signature: some Collection<UInt8>, for message: some Collection<UInt8>) -> Bool {
        guard signature.count == Self.signatureByteCount else { return false }
        guard let ctx = EVP_MD_CTX_new() else {
            OpenSSLErrors.clear()
            return false
        }
        defer { EVP_MD_CTX_free(ctx) }
        // Ed25519 is "one-shot": no digest (nil), the whole message to EVP_DigestVerify.
        guard EVP_DigestVerifyInit(ctx, nil, nil, nil, key.pointer) == 1 else {
            OpenSSLErrors.clear()
            return false
        }
        let result = withContiguousBytes(signature) { s in
            withContiguousBytes(message) { m in
                EVP_DigestVerify(ctx, s.baseAddress, s.count, m.baseAddress, m.count)
            }
        }
        // 1: valid; 0: invalid; < 0: an error. Only 1 verifies; anything else leaves nothing in the error queue.
        guard result == 1 else {
            OpenSSLErrors.clear()
            return false
        }
        return true
    }
}

/// SHA-256 through libcrypto.
public enum OpenSSLDigest {
    /// The 32-byte SHA-256 digest of `bytes`.
    public static func sha256(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: 32)
        var size: UInt32 = 0
        let ok = withContiguousBytes(bytes) { d in
            digest.withUnsafeMutableBufferPointer { out in
                EVP_Digest(d.baseAddress, d.count, out.baseAddress, &size, EVP_sha256(), nil)
            }
        }
        // EVP_Digest with the built-in SHA-256 fails only when memory runs out: nothing sensible to go on with.
        precondition(ok == 1 && size == 32, "libcrypto SHA-256 failed: \(OpenSSLErrors.take())")
        return digest
    }
}

/// `bytes` as one contiguous buffer whose base address is never nil (libcrypto wants a pointer even for 0 bytes):
/// in place when the collection has contiguous storage (Array, ArraySlice, Data), else copied once.
private func withContiguousBytes<R>(_ bytes: some Collection<UInt8>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if bytes.isEmpty {
        return withUnsafePointer(to: UInt8(0)) { body(UnsafeBufferPointer(start: $0, count: 0)) }
    }
    if let result = bytes.withContiguousStorageIfAvailable(body) { return result }
    return Array(bytes).withUnsafeBufferPointer(body)
}

/// Owns one EVP_PKEY; freed with the last copy of its key.
private final class PKey: @unchecked Sendable {
    // @unchecked: the EVP_PKEY is never modified after creation; OpenSSL 3 allows concurrent read-only use.
    let pointer: OpaquePointer

    init(_ pointer: OpaquePointer) { self.pointer = pointer }

    deinit { EVP_PKEY_free(pointer) }
}

private enum OpenSSLErrors {
    /// The oldest error in this thread's OpenSSL error queue, as text, and the queue emptied.
    static func take() -> String {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        guard code != 0 else { return "no error reported" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func clear() { ERR_clear_error() }
}
