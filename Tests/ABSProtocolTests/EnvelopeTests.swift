import ABSProtocol
import Crypto
import Foundation
import Testing

@Suite struct EnvelopeTests {
    let key = ABSKey()
    let ping = json(header())

    @Test func validSignedPingVerifies() throws {
        let result = try key.verifier().verify(command: "ping", payload: try key.envelope(ping), retained: false, now: testNow)
        let command = try #require(result.command, "refused: \(String(describing: result.refusal))")
        #expect(command.body == .ping)
        #expect(command.signed)
        #expect(command.header.kid == key.kid)
        #expect(command.header.requestID == "r-91")
        #expect(command.header.issuedAt == testNow.addingTimeInterval(-5))
        #expect(command.header.expiresAt == testNow.addingTimeInterval(300))
    }

    @Test func wrongSignatureIsRefused() throws {
        let other = try key.privateKey.signature(for: Array("something else".utf8))
        let env = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: other.base64EncodedString(), kid: key.kid)
        let result = try key.verifier().verify(command: "ping", payload: env, retained: false, now: testNow)
        expectRefused(result, .badSignature, mentioning: "does not verify")
        #expect(result.refusal?.requestID == nil, "an unverified request_id must not be echoed")
    }

    @Test func signatureByAnotherKeyUnderTheSameKidIsRefused() throws {
        let impostor = ABSKey(kid: key.kid)
        let result = try key.verifier().verify(command: "ping", payload: try impostor.envelope(ping), retained: false, now: testNow)
        expectRefused(result, .badSignature)
    }

    @Test func unknownKidIsRefused() throws {
        let result = try key.verifier().verify(command: "ping", payload: try key.envelope(ping, kid: "abs-2099"), retained: false, now: testNow)
        expectRefused(result, .badSignature, mentioning: "unknown kid", "abs-2099")
    }

    @Test func theRightKeyOfSeveralIsUsed() throws {
        let second = ABSKey(kid: "abs-2027-1")
        let ring = try KeyRing(keys: [key.kid: key.publicKeyBase64, second.kid: second.publicKeyBase64])
        let verifier = CommandVerifier(keys: ring, policy: CommandPolicy())
        #expect(verifier.verify(command: "ping", payload: try second.envelope(ping), retained: false, now: testNow).command?.header.kid == second.kid)
        #expect(verifier.verify(command: "ping", payload: try key.envelope(ping), retained: false, now: testNow).command?.header.kid == key.kid)
        // Signed by the second key but labelled with the first kid.
        let mislabelled = try second.envelope(ping, kid: key.kid)
        expectRefused(verifier.verify(command: "ping", payload: mislabelled, retained: false, now: testNow), .badSignature)
    }

    @Test func everyTamperedPayloadByteIsRefused() throws {
        let verifier = try key.verifier()
        let sig = try key.privateKey.signature(for: ping).base64EncodedString()
        for i in ping.indices {
            var tampered = ping
            tampered[i] ^= 0x01
            let env = key.envelope(payloadBase64: Data(tampered).base64EncodedString(), sigBase64: sig, kid: key.kid)
            expectRefused(verifier.verify(command: "ping", payload: env, retained: false, now: testNow), .badSignature)
        }
    }

    @Test func tamperedSignatureIsRefused() throws {
        let verifier = try key.verifier()
        var sig = Array(try key.privateKey.signature(for: ping))
        sig[10] ^= 0x80
        let env = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: Data(sig).base64EncodedString(), kid: key.kid)
        expectRefused(verifier.verify(command: "ping", payload: env, retained: false, now: testNow), .badSignature)
        let short = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: Data(sig.prefix(63)).base64EncodedString(), kid: key.kid)
        expectRefused(verifier.verify(command: "ping", payload: short, retained: false, now: testNow), .badSignature, mentioning: "64")
    }

    /// The signature covers the exact bytes: the same command re-encoded (other whitespace, other
    /// key order) no longer verifies, although it means the same.
    @Test func reEncodedPayloadIsRefused() throws {
        let verifier = try key.verifier()
        let sig = try key.privateKey.signature(for: ping).base64EncodedString()
        let text = String(decoding: ping, as: UTF8.self)
        let variants = [
            text.replacingOccurrences(of: ",\"", with: ", \"").replacingOccurrences(of: "\":", with: "\": "),
            text + "\n",
            " " + text,
            String(decoding: try JSONSerialization.data(withJSONObject: header(), options: [.prettyPrinted]), as: UTF8.self),
        ]
        for variant in variants where Array(variant.utf8) != ping {
            // It is a valid command in its own right…
            let own = try key.envelope(Array(variant.utf8))
            #expect(verifier.verify(command: "ping", payload: own, retained: false, now: testNow).command != nil)
            // …but not under the original signature.
            let env = key.envelope(payloadBase64: Data(variant.utf8).base64EncodedString(), sigBase64: sig, kid: key.kid)
            expectRefused(verifier.verify(command: "ping", payload: env, retained: false, now: testNow), .badSignature)
        }
    }

    /// Whitespace and key order in the envelope itself do not matter (the envelope is not signed).
    @Test func envelopeLayoutDoesNotMatter() throws {
        let sig = try key.privateKey.signature(for: ping).base64EncodedString()
        let payload = Data(ping).base64EncodedString()
        let env = " {\n \"sig\" : \"\(sig)\",\t\"payload\":\"\(payload)\" , \"kid\":\"\(key.kid)\", \"note\": [1, {\"x\": null}] }\n"
        let result = try key.verifier().verify(command: "ping", payload: Array(env.utf8), retained: false, now: testNow)
        #expect(result.command?.signed == true, "\(String(describing: result.refusal))")
        // JSON-escaped slashes in the base64 text ("\/") are the same string.
        let escaped = try key.envelope(ping).map { $0 }
        let text = String(decoding: escaped, as: UTF8.self).replacingOccurrences(of: "/", with: "\\/")
        let r2 = try key.verifier().verify(command: "ping", payload: Array(text.utf8), retained: false, now: testNow)
        #expect(r2.command != nil, "\(String(describing: r2.refusal))")
    }

    @Test func retainedCommandIsRefused() throws {
        let result = try key.verifier().verify(command: "ping", payload: try key.envelope(ping), retained: true, now: testNow)
        expectRefused(result, .malformed, mentioning: "retained")
    }

    @Test func unknownCommandNameIsMalformed() throws {
        for name in ["reboot", "", "Ping", "ping/x"] {
            let result = try key.verifier().verify(command: name, payload: try key.envelope(ping), retained: false, now: testNow)
            expectRefused(result, .malformed, mentioning: "unknown command")
        }
    }

    @Test func unsignedIsRefusedByDefault() throws {
        let verifier = try key.verifier()
        // A bare command JSON.
        expectRefused(verifier.verify(command: "ping", payload: ping, retained: false, now: testNow), .badSignature, mentioning: "unsigned")
        // An envelope without sig.
        let noSig = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: nil, kid: key.kid)
        expectRefused(verifier.verify(command: "ping", payload: noSig, retained: false, now: testNow), .badSignature, mentioning: "no sig")
        let noSigNoKid = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: nil, kid: nil)
        expectRefused(verifier.verify(command: "ping", payload: noSigNoKid, retained: false, now: testNow), .badSignature)
        let nullSig = Array("{\"kid\":\"\(key.kid)\",\"payload\":\"\(Data(ping).base64EncodedString())\",\"sig\":null}".utf8)
        expectRefused(verifier.verify(command: "ping", payload: nullSig, retained: false, now: testNow), .badSignature)
    }

    @Test func unsignedIsAcceptedWhenAllowed() throws {
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        let verifier = try key.verifier(policy)
        let bare = verifier.verify(command: "ping", payload: ping, retained: false, now: testNow)
        #expect(bare.command?.signed == false, "\(String(describing: bare.refusal))")
        #expect(bare.command?.header.kid == nil)
        #expect(bare.command?.header.requestID == "r-91")
        let noSig = key.envelope(payloadBase64: Data(ping).base64EncodedString(), sigBase64: nil, kid: nil)
        let viaEnvelope = verifier.verify(command: "ping", payload: noSig, retained: false, now: testNow)
        #expect(viaEnvelope.command?.signed == false, "\(String(describing: viaEnvelope.refusal))")
        // Signed commands still verify, and report signed = true.
        #expect(verifier.verify(command: "ping", payload: try key.envelope(ping), retained: false, now: testNow).command?.signed == true)
        // Unsigned does not relax anything else.
        let expired = json(header(issued: -600, expires: -1))
        expectRefused(verifier.verify(command: "ping", payload: expired, retained: false, now: testNow), .expired)
    }

    /// A signature that is present is verified even when unsigned commands are allowed.
    @Test func presentSignatureIsCheckedEvenWhenUnsignedIsAllowed() throws {
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        let verifier = try key.verifier(policy)
        let impostor = ABSKey(kid: key.kid)
        expectRefused(verifier.verify(command: "ping", payload: try impostor.envelope(ping), retained: false, now: testNow), .badSignature)
        expectRefused(verifier.verify(command: "ping", payload: try key.envelope(ping, kid: "nope"), retained: false, now: testNow), .badSignature)
        let sigWithoutKid = key.envelope(payloadBase64: Data(ping).base64EncodedString(),
                                         sigBase64: try key.privateKey.signature(for: ping).base64EncodedString(), kid: nil)
        expectRefused(verifier.verify(command: "ping", payload: sigWithoutKid, retained: false, now: testNow), .malformed, mentioning: "no kid")
    }

    @Test func brokenEnvelopesAreMalformed() throws {
        let verifier = try key.verifier()
        let payload = Data(ping).base64EncodedString()
        let sig = try key.privateKey.signature(for: ping).base64EncodedString()
        let cases: [(String, String)] = [
            ("", "end of input"),
            ("not json", "JSON"),
            ("}{", "not valid JSON"),
            ("[1,2]", "not a JSON object"),
            ("{\"kid\":\"\(key.kid)\",\"sig\":\"\(sig)\"}", "no payload"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":42,\"sig\":\"\(sig)\"}", "payload must be"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"sig\":7}", "sig must be"),
            ("{\"kid\":7,\"payload\":\"\(payload)\",\"sig\":\"\(sig)\"}", "kid must be"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"@@@@\",\"sig\":\"\(sig)\"}", "not base64"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload) \",\"sig\":\"\(sig)\"}", "not base64"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"sig\":\"!!\"}", "not base64"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"sig\":\"\(sig)\"", "unterminated"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"sig\":\"\(sig)\"} x", "trailing"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"payload\":\"\(payload)\",\"sig\":\"\(sig)\"}", "twice"),
            ("{\"kid\":\"\(key.kid)\",\"payload\":\"\(payload)\",\"sig\":\"\(sig)\",}", "not valid JSON"),
        ]
        for (text, mention) in cases {
            let result = verifier.verify(command: "ping", payload: Array(text.utf8), retained: false, now: testNow)
            expectRefused(result, .malformed, mentioning: mention)
        }
    }

    /// The signed payload must itself be a JSON object.
    @Test func signedNonJSONPayloadIsMalformed() throws {
        let verifier = try key.verifier()
        for bytes in [Array("hello".utf8), [], Array("[]".utf8), Array("{\"request_id\":\"r\"".utf8), [0xFF, 0xFE]] {
            let result = verifier.verify(command: "ping", payload: try key.envelope(bytes), retained: false, now: testNow)
            expectRefused(result, .malformed)
        }
    }

    @Test func oversizedPayloadIsRefusedBeforeParsing() throws {
        var policy = CommandPolicy()
        policy.maxPayloadBytes = 100
        let env = try key.envelope(ping)
        #expect(env.count > 100)
        expectRefused(try key.verifier(policy).verify(command: "ping", payload: env, retained: false, now: testNow), .malformed, mentioning: "exceeds")
    }

    @Test func deeplyNestedJSONIsRefusedWithoutCrashing() throws {
        let deep = "{\"request_id\":\"r\",\"x\":" + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + "}"
        let verifier = try key.verifier()
        expectRefused(verifier.verify(command: "ping", payload: try key.envelope(Array(deep.utf8)), retained: false, now: testNow),
                      .malformed, mentioning: "nesting")
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        expectRefused(try key.verifier(policy).verify(command: "ping", payload: Array(deep.utf8), retained: false, now: testNow),
                      .malformed, mentioning: "nesting")
    }
}
