import ABSProtocol
import Crypto
import Foundation
import Testing

@Suite struct KeyRingTests {
    let key = ABSKey(kid: "abs-2026-1")

    /// The RFC 8410 SubjectPublicKeyInfo of `key`, as PEM.
    func pem(lineEnding: String = "\n") -> String {
        let der = Data([0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]) + key.privateKey.publicKey.rawRepresentation
        return ["-----BEGIN PUBLIC KEY-----", der.base64EncodedString(), "-----END PUBLIC KEY-----", ""].joined(separator: lineEnding)
    }

    func signedPing(_ ring: KeyRing) throws -> Bool {
        let verifier = CommandVerifier(keys: ring, policy: CommandPolicy())
        return verifier.verify(command: "ping", payload: try key.envelope(json(header())), retained: false, now: testNow).command?.signed == true
    }

    @Test func rawBase64Key() throws {
        let ring = try KeyRing(keys: [key.kid: key.publicKeyBase64])
        #expect(ring.kids == [key.kid])
        #expect(try signedPing(ring))
        // Surrounding whitespace (a YAML block scalar) is tolerated.
        #expect(try signedPing(KeyRing(keys: [key.kid: "  \(key.publicKeyBase64)\n"])))
    }

    @Test func pemKey() throws {
        #expect(try signedPing(KeyRing(keys: [key.kid: pem()])))
        #expect(try signedPing(KeyRing(keys: [key.kid: pem(lineEnding: "\r\n")])))
        #expect(try signedPing(KeyRing(keys: [key.kid: "\n  " + pem()])))
    }

    /// The PEM written by tools/abs_sign.py (python3-cryptography) is accepted too; see
    /// OutsidePeerTests. Here: the PEM of another key does not verify this key's signatures.
    @Test func pemOfAnotherKeyDoesNotVerify() throws {
        let other = ABSKey(kid: key.kid)
        let der = Data([0x30, 0x2A, 0x30, 0x05, 0x06, 0x03, 0x2B, 0x65, 0x70, 0x03, 0x21, 0x00]) + other.privateKey.publicKey.rawRepresentation
        let otherPEM = "-----BEGIN PUBLIC KEY-----\n\(der.base64EncodedString())\n-----END PUBLIC KEY-----\n"
        #expect(try !signedPing(KeyRing(keys: [key.kid: otherPEM])))
    }

    @Test func badKeysNameTheirKid() throws {
        let raw = key.privateKey.publicKey.rawRepresentation
        let cases: [(String, String)] = [
            ("not base64!", "neither base64"),
            (Data(raw.prefix(31)).base64EncodedString(), "32 bytes, this one is 31"),
            ((raw + Data([0])).base64EncodedString(), "this one is 33"),
            ("", "this one is 0"),
            ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----", "BEGIN PUBLIC KEY"),
            ("-----BEGIN PUBLIC KEY-----\n\(raw.base64EncodedString())\n", "END PUBLIC KEY"),
            ("-----BEGIN PUBLIC KEY-----\n%%%%\n-----END PUBLIC KEY-----", "not base64"),
            ("-----BEGIN PUBLIC KEY-----\n\(raw.base64EncodedString())\n-----END PUBLIC KEY-----", "not an Ed25519 SubjectPublicKeyInfo"),
            // An EC P-256 SubjectPublicKeyInfo prefix is not Ed25519.
            ("-----BEGIN PUBLIC KEY-----\n\(P256.Signing.PrivateKey().publicKey.derRepresentation.base64EncodedString())\n-----END PUBLIC KEY-----",
             "not an Ed25519 SubjectPublicKeyInfo"),
        ]
        for (text, mention) in cases {
            do {
                _ = try KeyRing(keys: ["good": key.publicKeyBase64, "abs-broken-7": text])
                Issue.record("accepted \(text.debugDescription)")
            } catch {
                let message = String(describing: error)
                #expect(message.contains("abs-broken-7"), "\(message)")
                #expect(message.contains(mention), "\(message) should mention \(mention)")
            }
        }
    }

    /// Small-order points (any sign bit, canonical or y ≥ p) are refused when the ring is read: under such a key a
    /// crafted signature (R small-order, S = 0) verifies, and neither OpenSSL nor BoringSSL refuses them.
    @Test func smallOrderKeysAreRefused() throws {
        func hex(_ h: String) -> [UInt8] {
            var out: [UInt8] = []
            var i = h.startIndex
            while i < h.endIndex { let j = h.index(i, offsetBy: 2); out.append(UInt8(h[i..<j], radix: 16)!); i = j }
            return out
        }
        let encodings = [
            "0100000000000000000000000000000000000000000000000000000000000000",  // identity
            "0100000000000000000000000000000000000000000000000000000000000080",  // identity, sign bit
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // order 2
            "0000000000000000000000000000000000000000000000000000000000000000",  // order 4
            "0000000000000000000000000000000000000000000000000000000000000080",
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  // order 8
            "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
            "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // y = p (non-canonical 0)
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",  // y = p + 1 (non-canonical 1), sign bit
        ]
        for e in encodings {
            let b64 = Data(hex(e)).base64EncodedString()
            #expect(throws: KeyRing.KeyError.invalidKey(kid: "weak", reason: "a small-order point (a weak key under which anyone can forge signatures)"),
                    "\(e)") { try KeyRing(keys: ["weak": b64, key.kid: key.publicKeyBase64]) }
        }
        // A real key and one that differs from a small-order encoding by one bit are still read.
        var nearly = hex(encodings[5]); nearly[0] ^= 0x01
        _ = try KeyRing(keys: [key.kid: key.publicKeyBase64, "near": Data(nearly).base64EncodedString()])
    }

    @Test func badKidsAreRefused() throws {
        #expect(throws: KeyRing.KeyError.emptyKid) { try KeyRing(keys: ["": key.publicKeyBase64]) }
        #expect(throws: KeyRing.KeyError.invalidKid("a\nb")) { try KeyRing(keys: ["a\nb": key.publicKeyBase64]) }
    }

    @Test func emptyRingRefusesEverySignedCommand() throws {
        let verifier = CommandVerifier(keys: try KeyRing(keys: [:]), policy: CommandPolicy())
        expectRefused(verifier.verify(command: "ping", payload: try key.envelope(json(header())), retained: false, now: testNow),
                      .badSignature, mentioning: "unknown kid")
    }
}
