import ABSProtocol
import Foundation
import Testing
import TestSupport

/// tools/abs_sign.py (Python, python3-cryptography) plays ABS: what it signs must verify here, with
/// no Swift code on the signing side.
@Suite struct OutsidePeerTests {
    static let python = "/usr/bin/python3"
    let script = packageRoot.appendingPathComponent("tools/abs_sign.py").path

    func tool(_ arguments: [String], input: String? = nil) throws -> String {
        let (status, output) = try runCommand(Self.python, [script] + arguments, timeout: 60, input: input)
        #expect(status == 0, "abs_sign.py \(arguments.first ?? "") failed: \(output)")
        return output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    func keygen() throws -> (privateKey: String, publicKey: String) {
        let out = try tool(["keygen"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: String], "keygen printed \(out)")
        return (try #require(object["private_key"]), try #require(object["public_key"]))
    }

    @Test func envelopeFromPythonVerifies() throws {
        let keys = try keygen()
        #expect(try tool(["pub", "--key", keys.privateKey]) == keys.publicKey)
        let verifier = CommandVerifier(keys: try KeyRing(keys: ["abs-py-1": keys.publicKey]), policy: CommandPolicy())

        // Deliberately not compact: the signature is over these bytes, whatever their layout.
        let command = """
        {
          "request_id": "r-py-1", "issued_at": "\(rfc3339(testNow.addingTimeInterval(-2)))",
          "expires_at": "\(rfc3339(testNow.addingTimeInterval(120)))",
          "slot": 12, "operator_id": "tech-é", "reason": "door jammed"
        }

        """
        let envelope = try tool(["sign", "--key", keys.privateKey, "--kid", "abs-py-1"], input: command)
        let result = verifier.verify(command: "unlock", payload: Array(envelope.utf8), retained: false, now: testNow)
        #expect(result.command?.body == .unlock(slot: 12, operatorID: "tech-é", reason: "door jammed"),
                "\(String(describing: result.refusal)) for \(envelope)")
        #expect(result.command?.header.kid == "abs-py-1")

        // The same from a file.
        let dir = try TempDir("abs-sign")
        defer { dir.remove() }
        try Data(command.utf8).write(to: URL(fileURLWithPath: dir.path("cmd.json")))
        let fromFile = try tool(["sign", "--key", keys.privateKey, "--kid", "abs-py-1", "--payload-file", dir.path("cmd.json")])
        #expect(verifier.verify(command: "unlock", payload: Array(fromFile.utf8), retained: false, now: testNow).command != nil)

        // Tampered: one byte of the payload changed (12 → 13), signature kept.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(envelope.utf8)) as? [String: String])
        let payloadText = try #require(object["payload"])
        let payload = try #require(Data(base64Encoded: payloadText))
        let tamperedPayload = Data(String(decoding: payload, as: UTF8.self).replacingOccurrences(of: "\"slot\": 12", with: "\"slot\": 13").utf8)
        #expect(tamperedPayload != payload)
        let tampered = #"{"kid":"abs-py-1","payload":""# + tamperedPayload.base64EncodedString() + #"","sig":""# + object["sig"]! + #""}"#
        expectRefused(verifier.verify(command: "unlock", payload: Array(tampered.utf8), retained: false, now: testNow), .badSignature)

        // Signed by Python with another key.
        let other = try keygen()
        let foreign = try tool(["sign", "--key", other.privateKey, "--kid", "abs-py-1"], input: command)
        expectRefused(verifier.verify(command: "unlock", payload: Array(foreign.utf8), retained: false, now: testNow), .badSignature)
    }

    @Test func pemFromPythonIsAccepted() throws {
        let keys = try keygen()
        let pem = try tool(["pub", "--key", keys.privateKey, "--pem"])
        #expect(pem.hasPrefix("-----BEGIN PUBLIC KEY-----"))
        let verifier = CommandVerifier(keys: try KeyRing(keys: ["abs-pem": pem]), policy: CommandPolicy())
        let envelope = try tool(["sign", "--key", keys.privateKey, "--kid", "abs-pem"], input: String(decoding: json(header()), as: UTF8.self))
        #expect(verifier.verify(command: "ping", payload: Array(envelope.utf8), retained: false, now: testNow).command?.signed == true)
    }

    /// `--stamp` fills request_id, issued_at and expires_at from the real clock.
    @Test func stampedCommandVerifiesNow() throws {
        let keys = try keygen()
        let envelope = try tool(["sign", "--key", keys.privateKey, "--kid", "k", "--stamp", "60"], input: #"{"customer_id":"cust-789"}"#)
        let verifier = CommandVerifier(keys: try KeyRing(keys: ["k": keys.publicKey]), policy: CommandPolicy())
        let result = verifier.verify(command: "swap", payload: Array(envelope.utf8), retained: false, now: Date())
        #expect(result.command?.body == .swap(customerID: "cust-789", planInstanceID: nil, channel: nil), "\(String(describing: result.refusal))")
        let lifetime = try #require(result.command.map { $0.header.expiresAt.timeIntervalSince($0.header.issuedAt) })
        #expect(abs(lifetime - 60) < 0.001)
    }

    @Test func toolRefusesNonJSONUnlessTold() throws {
        let keys = try keygen()
        let (status, output) = try runCommand(Self.python, [script, "sign", "--key", keys.privateKey, "--kid", "k"], input: "not json")
        #expect(status != 0)
        #expect(output.contains("not UTF-8 JSON"))
        let raw = try tool(["sign", "--key", keys.privateKey, "--kid", "k", "--no-check"], input: "not json")
        let verifier = CommandVerifier(keys: try KeyRing(keys: ["k": keys.publicKey]), policy: CommandPolicy())
        expectRefused(verifier.verify(command: "ping", payload: Array(raw.utf8), retained: false, now: testNow), .malformed, mentioning: "JSON")
    }
}
