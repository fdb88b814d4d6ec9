import ABSProtocol
import Foundation
import Testing

/// The JSON and base64 the verifier accepts are exactly the standard ones: no leniency a hostile
/// sender could use to make two readers disagree.
@Suite struct StrictnessTests {
    let key = ABSKey()

    /// An unlock command whose body is `fields` (raw JSON text after the header).
    func unlock(_ fields: String) -> [UInt8] {
        Array(("{\"request_id\":\"r-91\",\"issued_at\":\"\(rfc3339(testNow))\",\"expires_at\":\"\(rfc3339(testNow.addingTimeInterval(60)))\","
               + fields + "}").utf8)
    }

    func verifyUnlock(_ fields: String) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier().verify(command: "unlock", payload: try key.envelope(unlock(fields)), retained: false, now: testNow)
    }

    @Test func jsonEscapesAndUnicode() throws {
        let cases: [(String, String)] = [
            (#""operator_id":"t\u00e9ch","reason":"a\/b""#, "téch|a/b"),
            (#""operator_id":"\ud83d\udd0b","reason":"\"quoted\" \\ back""#, "🔋|\"quoted\" \\ back"),
            (#""operator_id":"té","reason":"r""#, "té|r"),
        ]
        for (fields, expected) in cases {
            let result = try verifyUnlock("\"slot\":2," + fields)
            guard case .unlock(_, let op, let reason)? = result.command?.body else {
                Issue.record("\(fields): \(String(describing: result.refusal))")
                continue
            }
            #expect("\(op)|\(reason)" == expected)
        }
    }

    @Test func badStringsAreMalformed() throws {
        let cases: [(String, String)] = [
            (#""operator_id":"\ud800","reason":"r""#, "surrogate"),
            (#""operator_id":"\udc00x","reason":"r""#, "surrogate"),
            (#""operator_id":"\ud83dx","reason":"r""#, "surrogate"),
            (#""operator_id":"\x41","reason":"r""#, "invalid escape"),
            (#""operator_id":"\u12","reason":"r""#, "escape"),
            ("\"operator_id\":\"a\tb\",\"reason\":\"r\"", "control character"),
        ]
        for (fields, mention) in cases {
            expectRefused(try verifyUnlock("\"slot\":2," + fields), .malformed, mentioning: mention)
        }
        // Invalid UTF-8: a lone continuation byte, an overlong '/', a truncated sequence, an encoded surrogate.
        for bad: [UInt8] in [[0x80], [0xC0, 0xAF], [0xE2, 0x82], [0xED, 0xA0, 0x80]] {
            var bytes = unlock("\"slot\":2,\"operator_id\":\"X\",\"reason\":\"r\"")
            let i = bytes.firstIndex(of: UInt8(ascii: "X"))!
            bytes.replaceSubrange(i...i, with: bad)
            let result = try key.verifier().verify(command: "unlock", payload: try key.envelope(bytes), retained: false, now: testNow)
            expectRefused(result, .malformed, mentioning: "UTF-8")
        }
    }

    @Test func numbersFollowTheGrammar() throws {
        #expect(try verifyUnlock(#""slot":2,"operator_id":"t","reason":"r""#).command != nil)
        #expect(try verifyUnlock(#""slot":-0,"operator_id":"t","reason":"r""#).refusal?.message.contains("out of range") == true)
        for bad in ["02", "+2", "2.", ".5", "-", "0x2", "2e", "Infinity", "NaN", "2 3"] {
            expectRefused(try verifyUnlock("\"slot\":\(bad),\"operator_id\":\"t\",\"reason\":\"r\""), .malformed)
        }
        for notInteger in ["2.0", "2e0", "2E+0", "20e-1"] {
            expectRefused(try verifyUnlock("\"slot\":\(notInteger),\"operator_id\":\"t\",\"reason\":\"r\""), .malformed,
                          mentioning: "slot must be an integer")
        }
    }

    @Test func literalsAndStructure() throws {
        for bad in [#""slot":2,"operator_id":"t","reason":"r","x":tru"#,
                    #""slot":2,"operator_id":"t","reason":"r","x":nul"#,
                    #""slot":2,"operator_id":"t","reason":"r","x":True"#,
                    #""slot":2,"operator_id":"t","reason":"r","x":[1,]"#,
                    #""slot":2,"operator_id":"t","reason":"r","x":{"a"}"#,
                    #""slot":2,"operator_id":"t","reason":"r","x":'a'"#,
                    #""slot":2,"operator_id":"t","reason":"r",x:1"#,
                    #""slot":2,"operator_id":"t","reason":"r" // comment"#] {
            expectRefused(try verifyUnlock(bad), .malformed, mentioning: "not valid JSON")
        }
        // A byte-order mark is not JSON whitespace.
        let withBOM = [0xEF, 0xBB, 0xBF] + unlock(#""slot":2,"operator_id":"t","reason":"r""#)
        expectRefused(try key.verifier().verify(command: "unlock", payload: try key.envelope(withBOM), retained: false, now: testNow), .malformed)
    }

    /// Standard base64 only: padding may be left out, but nothing else is tolerated.
    @Test func base64Forms() throws {
        let verifier = try key.verifier()
        // A payload whose length is not a multiple of 3, so its base64 has padding.
        let command = try #require((0..<3).map { json(header("r-" + String(repeating: "x", count: $0))) }.first { $0.count % 3 == 1 })
        let sig = try key.privateKey.signature(for: command).base64EncodedString()
        let padded = Data(command).base64EncodedString()
        #expect(padded.hasSuffix("=="))

        func verify(_ payloadBase64: String, _ sigBase64: String = sig) -> Result<VerifiedCommand, CommandRefusal> {
            verifier.verify(command: "ping", payload: key.envelope(payloadBase64: payloadBase64, sigBase64: sigBase64, kid: key.kid),
                            retained: false, now: testNow)
        }
        #expect(verify(padded).command != nil)
        #expect(verify(String(padded.dropLast(2))).command != nil, "unpadded")
        #expect(verify(String(padded.dropLast(2)), String(sig.dropLast(2))).command != nil, "unpadded sig")
        expectRefused(verify(String(padded.dropLast(1))), .malformed, mentioning: "payload is not base64")
        expectRefused(verify(padded + "="), .malformed, mentioning: "payload is not base64")
        expectRefused(verify("-" + padded.dropFirst()), .malformed, mentioning: "not base64")  // base64url is not base64
        expectRefused(verify("_" + padded.dropFirst()), .malformed, mentioning: "not base64")
        expectRefused(verify(String(padded.prefix(8)) + "\\n" + String(padded.dropFirst(8))), .malformed, mentioning: "not base64")
        // Non-zero bits after the last byte: same bytes, non-canonical text.
        let last = padded.index(padded.endIndex, offsetBy: -3)
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        let value = alphabet.firstIndex(of: padded[last])!
        let sloppy = padded.replacingCharacters(in: last...last, with: String(alphabet[value | 1]))
        #expect(sloppy != padded)
        expectRefused(verify(sloppy), .malformed, mentioning: "not base64")
    }
}
