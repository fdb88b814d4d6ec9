@testable import ABSProtocol
import COpenSSL
import Crypto
import Foundation
import Testing
import TestSupport

/// ABSProtocol's Ed25519 verification through OpenSSL's libcrypto, against RFC 8032's vectors and two independent
/// signers: swift-crypto (BoringSSL) and python3-cryptography.
@Suite struct Ed25519OpenSSLTests {
    struct Vector: Sendable {
        let name: String
        let secret: String
        let publicKey: String
        let message: String
        let messageLength: Int
        let signature: String
    }

    /// RFC 8032 section 7.1, TEST 1, 2, 3 and TEST 1024 (a 1023-byte message).
    static let rfc8032: [Vector] = [
        Vector(name: "TEST 1",
               secret: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
               publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
               message: "",
               messageLength: 0,
               signature: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
                        + "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        Vector(name: "TEST 2",
               secret: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
               publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
               message: "72",
               messageLength: 1,
               signature: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da"
                        + "085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        Vector(name: "TEST 3",
               secret: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
               publicKey: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
               message: "af82",
               messageLength: 2,
               signature: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac"
                        + "18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
        Vector(name: "TEST 1024",
               secret: "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
               publicKey: "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
               message: [
                   "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98",
                   "fa6e264bf09efe12ee50f8f54e9f77b1e355f6c50544e23fb1433ddf73be84d8",
                   "79de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b270b20329d",
                   "658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc",
                   "1a858efcb8550ee3a5e1998bd177e93a7363c344fe6b199ee5d02e82d522c4fe",
                   "ba15452f80288a821a579116ec6dad2b3b310da903401aa62100ab5d1a36553e",
                   "06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbef",
                   "efd75499da96bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7",
                   "aff6f6c94fcd7204ed3455c68c83f4a41da4af2b74ef5c53f1d8ac70bdcb7ed1",
                   "85ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2",
                   "d17ba70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24",
                   "554119a831a9aad6079cad88425de6bde1a9187ebb6092cf67bf2b13fd65f270",
                   "88d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63bcbcc",
                   "2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b07",
                   "07e0917af48bbb75fed413d238f5555a7a569d80c3414a8d0859dc65a46128ba",
                   "b27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d83d1255dc51a",
                   "ddd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429e",
                   "c96031dbcad3dad9af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb7",
                   "51fb73e666c6c655ade8297297d07ad1ba5e43f1bca32301651339e22904cc8c",
                   "42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8",
                   "ca61783aacec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34df",
                   "f7310fdc82aebfd904b01e1dc54b2927094b2db68d6f903b68401adebf5a7e08",
                   "d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649",
                   "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e4",
                   "88acba6b965610b5480109c8b17b80e1b7b750dfc7598d5d5011fd2dcc5600a3",
                   "2ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504ccc493d97e",
                   "6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5f",
                   "b93246f6b1116398a346f1a641f3b041e989f7914f90cc2c7fff357876e506b5",
                   "0d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d90d11faa933a15ef1",
                   "369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380d",
                   "b2eaaa707b4c4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c",
                   "0618983f8741c5ef68d3a101e8a3b8cac60c905c15fc910840b94c00a0b9d0",
               ].joined(),
               messageLength: 1023,
               signature: "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350"
                        + "aa5371b1508f9f4528ecea23c436d94b5e8fcd4f681e30a6ac00a9704a188a03"),
    ]

    /// The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian.
    static let order: [UInt8] = hex("edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010")

    static func key(_ hexKey: String) throws -> Ed25519PublicKey {
        try Ed25519PublicKey(rawRepresentation: hex(hexKey))
    }

    /// `bytes` with bit `bit` of byte `index` flipped.
    static func flipped(_ bytes: [UInt8], _ index: Int, bit: Int = 0) -> [UInt8] {
        var b = bytes
        b[index] ^= UInt8(1) << UInt8(bit)
        return b
    }

    /// The signature with S replaced by S + L (the same scalar mod L, not canonical: S + L < 2^253 fits 32 bytes).
    static func plusOrder(_ signature: [UInt8]) -> [UInt8] {
        var out = signature
        var carry = 0
        for i in 0 ..< 32 {
            let sum = Int(signature[32 + i]) + Int(order[i]) + carry
            out[32 + i] = UInt8(sum & 0xFF)
            carry = sum >> 8
        }
        precondition(carry == 0)
        return out
    }

    // MARK: RFC 8032

    @Test(arguments: rfc8032) func rfc8032VectorVerifies(_ v: Vector) throws {
        #expect(hex(v.message).count == v.messageLength)
        let key = try Self.key(v.publicKey)
        #expect(key.rawRepresentation == hex(v.publicKey))
        #expect(key.isValidSignature(hex(v.signature), for: hex(v.message)), "\(v.name)")

        // The vector's secret gives the vector's public key in swift-crypto too (the vectors are read right).
        let secret = try Curve25519.Signing.PrivateKey(rawRepresentation: hex(v.secret))
        #expect(Array(secret.publicKey.rawRepresentation) == hex(v.publicKey))
    }

    @Test(arguments: rfc8032) func rfc8032TamperedIsRefused(_ v: Vector) throws {
        let key = try Self.key(v.publicKey)
        let message = hex(v.message)
        let signature = hex(v.signature)
        // Any one bit of R or S.
        for index in [0, 17, 31, 32, 40, 63] {
            for bit in [0, 7] {
                #expect(!key.isValidSignature(Self.flipped(signature, index, bit: bit), for: message), "\(v.name) sig[\(index)] bit \(bit)")
            }
        }
        // The message: a bit flipped, a byte added, the last byte dropped.
        if !message.isEmpty {
            #expect(!key.isValidSignature(signature, for: Self.flipped(message, message.count - 1)))
            #expect(!key.isValidSignature(signature, for: message.dropLast()))
        }
        #expect(!key.isValidSignature(signature, for: message + [0]))
        // Another vector's key.
        let other = try Self.key(Self.rfc8032.first { $0.name != v.name }!.publicKey)
        #expect(!other.isValidSignature(signature, for: message))
        // The key with one bit flipped (may not even be a point: refused either way).
        let flippedKey = try Ed25519PublicKey(rawRepresentation: Self.flipped(hex(v.publicKey), 5, bit: 3))
        #expect(!flippedKey.isValidSignature(signature, for: message))
    }

    /// S + L verifies the same equation; RFC 8032 5.1.7 requires S < L, and so do OpenSSL 3 and BoringSSL.
    @Test(arguments: rfc8032) func nonCanonicalSIsRefused(_ v: Vector) throws {
        let key = try Self.key(v.publicKey)
        let signature = hex(v.signature)
        let malleated = Self.plusOrder(signature)
        #expect(malleated != signature)
        #expect(!key.isValidSignature(malleated, for: hex(v.message)))
        // BoringSSL (swift-crypto) agrees.
        let boring = try Curve25519.Signing.PublicKey(rawRepresentation: hex(v.publicKey))
        #expect(boring.isValidSignature(signature, for: hex(v.message)))
        #expect(!boring.isValidSignature(malleated, for: hex(v.message)))
    }

    // MARK: Lengths

    @Test func wrongLengthsAreRefused() throws {
        let v = Self.rfc8032[1]
        let key = try Self.key(v.publicKey)
        let signature = hex(v.signature)
        let message = hex(v.message)
        #expect(key.isValidSignature(signature, for: message))
        #expect(!key.isValidSignature([], for: message))
        #expect(!key.isValidSignature(signature.dropLast(), for: message))
        #expect(!key.isValidSignature(signature + [0], for: message))
        #expect(!key.isValidSignature(signature + signature, for: message))
        #expect(!key.isValidSignature(signature.prefix(32), for: message))

        #expect(throws: Ed25519PublicKey.KeyError.wrongLength(31)) { try Ed25519PublicKey(rawRepresentation: hex(v.publicKey).dropLast()) }
        #expect(throws: Ed25519PublicKey.KeyError.wrongLength(33)) { try Ed25519PublicKey(rawRepresentation: hex(v.publicKey) + [0]) }
        #expect(throws: Ed25519PublicKey.KeyError.wrongLength(0)) { try Ed25519PublicKey(rawRepresentation: [UInt8]()) }
        #expect(throws: Ed25519PublicKey.KeyError.wrongLength(64)) { try Ed25519PublicKey(rawRepresentation: signature) }
    }

    // MARK: Keys that are not ordinary points

    /// Every encoding of the eight points of small order (the identity, order 2, 4 and 8), with the sign bit both ways.
    static let smallOrderKeys: [String] = [
        "0100000000000000000000000000000000000000000000000000000000000000",  // identity
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  // order 2 (y = -1)
        "0000000000000000000000000000000000000000000000000000000000000000",  // order 4 (y = 0), all zero
        "0000000000000000000000000000000000000000000000000000000000000080",  // order 4, sign bit set
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ]

    /// A small-order (or all-zero) key verifies no signature of an honest signer, nor random bytes, for random messages;
    /// and on crafted signatures OpenSSL and BoringSSL agree (no new behaviour). Both accept, for every message, e.g.
    /// R = the identity, S = 0 under the identity key: neither refuses small-order keys (see Ed25519PublicKey).
    @Test(arguments: smallOrderKeys) func smallOrderKeyAcceptsNothingOrdinary(_ keyHex: String) throws {
        var rng = SplitMix64(seed: 0x5EED_0000 &+ UInt64(Self.smallOrderKeys.firstIndex(of: keyHex) ?? 99))
        let key = try Self.key(keyHex)  // any 32 bytes make a key, in OpenSSL as in swift-crypto
        let boring = try Curve25519.Signing.PublicKey(rawRepresentation: hex(keyHex))
        let signer = Curve25519.Signing.PrivateKey()
        for _ in 0 ..< 20 {
            let message = (0 ..< Int.random(in: 0 ... 80, using: &rng)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            let honest = Array(try signer.signature(for: message))
            #expect(!key.isValidSignature(honest, for: message))
            let random = (0 ..< 64).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            #expect(!key.isValidSignature(random, for: message))
        }
        // The classic forgery under a small-order key: R = a small-order point, S = 0. Whatever the answer, the same
        // as swift-crypto's (the behaviour before the switch).
        for rHex in Self.smallOrderKeys {
            let forged = hex(rHex) + [UInt8](repeating: 0, count: 32)
            for message in [[UInt8](), Array("ping".utf8), [0x42, 0x00, 0xFF]] {
                #expect(key.isValidSignature(forged, for: message) == boring.isValidSignature(forged, for: message),
                        "key \(keyHex) R \(rHex) message \(message)")
            }
        }
    }

    /// y ≥ p (a non-canonical encoding) and a y with no x on the curve: refused as signatures' keys.
    @Test func keysThatAreNotPointsVerifyNothing() throws {
        let v = Self.rfc8032[2]
        // y = 2 has no x on the curve (x² = (y²-1)/(dy²+1) is not a square mod p): a 32-byte key that is no point.
        let notAPoint = try Ed25519PublicKey(rawRepresentation: hex("0200000000000000000000000000000000000000000000000000000000000000"))
        #expect(!notAPoint.isValidSignature(hex(v.signature), for: hex(v.message)))
        #expect(!notAPoint.isValidSignature(hex(v.signature), for: [UInt8]()))
    }

    // MARK: Independent signers

    /// swift-crypto (BoringSSL) signs, OpenSSL verifies; and the other way round for what must be refused.
    @Test func swiftCryptoSignaturesVerify() throws {
        var rng = SplitMix64(seed: 0xED25_5190)
        for round in 0 ..< 50 {
            let signer = Curve25519.Signing.PrivateKey()
            let key = try Ed25519PublicKey(rawRepresentation: signer.publicKey.rawRepresentation)
            let length = round == 0 ? 0 : Int.random(in: 1 ... 4096, using: &rng)
            let message = (0 ..< length).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            let signature = Array(try signer.signature(for: message))
            #expect(key.isValidSignature(signature, for: message), "round \(round), \(length) bytes")
            // Data and slices, not only Arrays.
            #expect(key.isValidSignature(Data(signature), for: Data(message)))
            #expect(key.isValidSignature(signature[...], for: message[...]))
            // No contiguous storage (copied once).
            #expect(key.isValidSignature(signature.lazy.map { $0 }, for: message.lazy.map { $0 }))

            let byte = Int.random(in: 0 ..< 64, using: &rng)
            let badSignature = Self.flipped(signature, byte, bit: Int.random(in: 0 ..< 8, using: &rng))
            #expect(!key.isValidSignature(badSignature, for: message))
            #expect(!signer.publicKey.isValidSignature(badSignature, for: message))
            if !message.isEmpty {
                let badMessage = Self.flipped(message, Int.random(in: 0 ..< message.count, using: &rng))
                #expect(!key.isValidSignature(signature, for: badMessage))
            }
            let otherKey = try Ed25519PublicKey(rawRepresentation: Curve25519.Signing.PrivateKey().publicKey.rawRepresentation)
            #expect(!otherKey.isValidSignature(signature, for: message))
        }
    }

    /// python3-cryptography signs (no Swift on the signing side), OpenSSL verifies the raw signatures.
    @Test func pythonSignaturesVerify() throws {
        let script = """
        import os, sys
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
        k = Ed25519PrivateKey.generate()
        print(k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex())
        for n in [0, 1, 2, 63, 64, 65, 1000, 65536]:
            m = os.urandom(n)
            print(m.hex() or "-", k.sign(m).hex())
        """
        let (status, output) = try runCommand("/usr/bin/python3", ["-c", script], timeout: 60)
        #expect(status == 0, "\(output)")
        let lines = output.split(separator: "\n").map(String.init)
        try #require(lines.count == 9, "\(output)")
        let key = try Self.key(lines[0])
        for line in lines.dropFirst() {
            let parts = line.split(separator: " ").map(String.init)
            try #require(parts.count == 2)
            let message = parts[0] == "-" ? [] : hex(parts[0])
            let signature = hex(parts[1])
            #expect(key.isValidSignature(signature, for: message), "\(message.count) bytes")
            #expect(!key.isValidSignature(signature, for: message + [1]))
            #expect(!key.isValidSignature(Self.plusOrder(signature), for: message))
        }
    }

    // MARK: Threads, the error queue

    /// One key (one EVP_PKEY) from many threads at once: every answer right.
    @Test func oneKeyFromManyThreads() async throws {
        let signer = Curve25519.Signing.PrivateKey()
        let key = try Ed25519PublicKey(rawRepresentation: signer.publicKey.rawRepresentation)
        let messages = (0 ..< 16).map { i in Array("command \(i) ".utf8) + [UInt8](repeating: UInt8(i), count: i * 37) }
        let signatures = try messages.map { Array(try signer.signature(for: $0)) }
        let wrong = await withTaskGroup(of: Int.self) { group in
            for t in 0 ..< 16 {
                group.addTask {
                    var wrong = 0
                    for i in 0 ..< 200 {
                        let m = (t + i) % messages.count
                        if !key.isValidSignature(signatures[m], for: messages[m]) { wrong += 1 }
                        if key.isValidSignature(signatures[(m + 1) % messages.count], for: messages[m]) { wrong += 1 }
                    }
                    return wrong
                }
            }
            return await group.reduce(0, +)
        }
        #expect(wrong == 0)
    }

    /// A refused signature leaves nothing in OpenSSL's (per-thread) error queue for the next user of libcrypto.
    @Test func refusalLeavesNoOpenSSLError() throws {
        let v = Self.rfc8032[2]
        ERR_clear_error()
        let notAPoint = try Ed25519PublicKey(rawRepresentation: hex("0200000000000000000000000000000000000000000000000000000000000000"))
        for (key, signature) in [(try Self.key(v.publicKey), Self.flipped(hex(v.signature), 3)),
                                 (try Self.key(v.publicKey), Self.plusOrder(hex(v.signature))),
                                 (notAPoint, hex(v.signature))] {
            #expect(!key.isValidSignature(signature, for: hex(v.message)))
            #expect(ERR_peek_error() == 0)
        }
        #expect(try Self.key(v.publicKey).isValidSignature(hex(v.signature), for: hex(v.message)))
        #expect(ERR_peek_error() == 0)
    }

    // MARK: KeyRing and the verifier on top

    @Test func keyRingKeepsOneKeyPerKid() throws {
        let a = ABSKey(kid: "abs-a"), b = ABSKey(kid: "abs-b")
        let ring = try KeyRing(keys: [a.kid: a.publicKeyBase64, b.kid: b.publicKeyBase64])
        #expect(ring.publicKey(kid: "abs-a")?.rawRepresentation == Array(a.privateKey.publicKey.rawRepresentation))
        #expect(ring.publicKey(kid: "abs-b")?.rawRepresentation == Array(b.privateKey.publicKey.rawRepresentation))
        #expect(ring.publicKey(kid: "abs-c") == nil)

        // Each kid verifies its own key's envelopes only.
        let verifier = CommandVerifier(keys: ring, policy: CommandPolicy())
        #expect(verifier.verify(command: "ping", payload: try a.envelope(json(header())), retained: false, now: testNow).command?.header.kid == "abs-a")
        expectRefused(verifier.verify(command: "ping", payload: try a.envelope(json(header()), kid: "abs-b"), retained: false, now: testNow),
                      .badSignature, mentioning: "does not verify with key \"abs-b\"")
    }

    /// The RFC's TEST 2 key in a ring: a signature malleated to S + L is refused as a bad signature.
    @Test func verifierRefusesNonCanonicalS() throws {
        let signer = try Curve25519.Signing.PrivateKey(rawRepresentation: hex(Self.rfc8032[1].secret))
        let abs = ABSKey(kid: "abs-rfc", privateKey: signer)
        let command = json(header())
        let signature = Array(try signer.signature(for: command))
        let verifier = try abs.verifier()
        let good = abs.envelope(payloadBase64: Data(command).base64EncodedString(), sigBase64: Data(signature).base64EncodedString(), kid: abs.kid)
        #expect(verifier.verify(command: "ping", payload: good, retained: false, now: testNow).command?.signed == true)
        let malleated = abs.envelope(payloadBase64: Data(command).base64EncodedString(),
                                     sigBase64: Data(Self.plusOrder(signature)).base64EncodedString(), kid: abs.kid)
        expectRefused(verifier.verify(command: "ping", payload: malleated, retained: false, now: testNow),
                      .badSignature, mentioning: "does not verify")
    }

    // MARK: SHA-256 (the daemon's config digest and technicians' credentials)

    @Test func sha256MatchesKnownDigestsAndSwiftCrypto() throws {
        #expect(OpenSSLDigest.sha256([UInt8]()) == hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"))
        #expect(OpenSSLDigest.sha256("abc".utf8.lazy.map { $0 }) == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(OpenSSLDigest.sha256("abc".utf8) == hex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"))
        #expect(OpenSSLDigest.sha256(hex(Self.rfc8032[3].message)) == hex("358c67baee6b3e0265787951d1840a8468b9e9044852f1c67229a892b2cc0d22"))
        var rng = SplitMix64(seed: 256)
        for length in [1, 55, 56, 63, 64, 65, 1000, 100_000] {
            let data = (0 ..< length).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            #expect(OpenSSLDigest.sha256(data) == Array(SHA256.hash(data: data)), "\(length) bytes")
        }
    }
}

/// Lower- or upper-case hex to bytes (test data only: traps on anything else).
private func hex(_ s: String) -> [UInt8] {
    let digits = Array(s.utf8)
    precondition(digits.count % 2 == 0, "odd hex length")
    func value(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0") ... UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a") ... UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A") ... UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: preconditionFailure("not hex: \(c)")
        }
    }
    return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
}
