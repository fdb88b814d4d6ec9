import ABSProtocol
import Foundation
import Testing

@Suite struct BodyTests {
    let key = ABSKey()

    func verify(_ command: String, _ body: [String: Any]) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier().verify(command: command, payload: try key.envelope(json(merged(header(), body))), retained: false, now: testNow)
    }

    // MARK: swap

    @Test func validSwap() throws {
        let full = try verify("swap", ["customer_id": "cust-789", "plan_instance_id": "pi-000123", "channel": "app"])
        #expect(full.command?.body == .swap(customerID: "cust-789", planInstanceID: "pi-000123", channel: "app"),
                "\(String(describing: full.refusal))")
        let minimal = try verify("swap", ["customer_id": "cust-789"])
        #expect(minimal.command?.body == .swap(customerID: "cust-789", planInstanceID: nil, channel: nil))
        let nulls = try verify("swap", ["customer_id": "cust-789", "plan_instance_id": NSNull(), "channel": NSNull()])
        #expect(nulls.command?.body == .swap(customerID: "cust-789", planInstanceID: nil, channel: nil))
        let unicode = try verify("swap", ["customer_id": "cust-é-ü"])
        #expect(unicode.command?.body == .swap(customerID: "cust-é-ü", planInstanceID: nil, channel: nil))
    }

    @Test func malformedSwaps() throws {
        let cases: [([String: Any], String)] = [
            ([:], "missing customer_id"),
            (["customer_id": ""], "customer_id must not be empty"),
            (["customer_id": "   "], "customer_id must not be blank"),
            (["customer_id": 789], "customer_id must be a string"),
            (["customer_id": NSNull()], "customer_id must be a string"),
            (["customer_id": "c\nx"], "control character"),
            (["customer_id": String(repeating: "c", count: 257)], "longer than 256"),
            (["customer_id": "c", "plan_instance_id": 5], "plan_instance_id must be a string"),
            (["customer_id": "c", "plan_instance_id": ""], "plan_instance_id must not be empty"),
            (["customer_id": "c", "channel": ["app"]], "channel must be a string"),
        ]
        for (body, mention) in cases {
            let result = try verify("swap", body)
            expectRefused(result, .malformed, mentioning: mention)
            #expect(result.refusal?.requestID == "r-91")
        }
    }

    // MARK: unlock

    @Test func validUnlock() throws {
        let result = try verify("unlock", ["slot": 7, "operator_id": "tech-12", "reason": "door jammed"])
        #expect(result.command?.body == .unlock(slot: 7, operatorID: "tech-12", reason: "door jammed"), "\(String(describing: result.refusal))")
        #expect(try verify("unlock", ["slot": 1, "operator_id": "t", "reason": "r"]).command != nil)
        #expect(try verify("unlock", ["slot": 48, "operator_id": "t", "reason": "r"]).command != nil)
    }

    @Test func malformedUnlocks() throws {
        let ok: [String: Any] = ["slot": 7, "operator_id": "tech-12", "reason": "door jammed"]
        let cases: [([String: Any], String)] = [
            (merged(ok, ["slot": 0]), "slot 0 is out of range 1…48"),
            (merged(ok, ["slot": 49]), "slot 49 is out of range"),
            (merged(ok, ["slot": -1]), "out of range"),
            (merged(ok, ["slot": 7.5]), "slot must be an integer"),
            (merged(ok, ["slot": "7"]), "slot must be an integer"),
            (merged(ok, ["slot": true]), "slot must be an integer"),
            (merged(ok, ["slot": NSNull()]), "slot must be an integer"),
            (merged(ok, ["operator_id": ""]), "operator_id must not be empty"),
            (merged(ok, ["operator_id": 12]), "operator_id must be a string"),
            (merged(ok, ["reason": ""]), "reason must not be empty"),
            (merged(ok, ["reason": String(repeating: "x", count: 1025)]), "reason is longer than 1024"),
            (merged(ok, ["reason": "a\u{7}b"]), "control character"),
        ]
        for (body, mention) in cases {
            expectRefused(try verify("unlock", body), .malformed, mentioning: mention)
        }
        for field in ["slot", "operator_id", "reason"] {
            var body = ok
            body.removeValue(forKey: field)
            expectRefused(try verify("unlock", body), .malformed, mentioning: "missing \(field)")
        }
        // Out-of-range integers that do not even fit in 64 bits.
        let huge = "{\"request_id\":\"r-91\",\"issued_at\":\"\(rfc3339(testNow))\",\"expires_at\":\"\(rfc3339(testNow.addingTimeInterval(60)))\",\"slot\":99999999999999999999,\"operator_id\":\"t\",\"reason\":\"r\"}"
        let result = try key.verifier().verify(command: "unlock", payload: try key.envelope(Array(huge.utf8)), retained: false, now: testNow)
        expectRefused(result, .malformed, mentioning: "slot must be an integer")
    }

    // MARK: slot

    @Test func validSlotCommands() throws {
        #expect(try verify("slot", ["slot": 3, "in_service": false]).command?.body == .slot(slot: 3, inService: false))
        #expect(try verify("slot", ["slot": 3, "in_service": true]).command?.body == .slot(slot: 3, inService: true))
    }

    @Test func malformedSlotCommands() throws {
        let cases: [([String: Any], String)] = [
            (["in_service": true], "missing slot"),
            (["slot": 3], "missing in_service"),
            (["slot": 3, "in_service": 1], "in_service must be true or false"),
            (["slot": 3, "in_service": "true"], "in_service must be true or false"),
            (["slot": 3, "in_service": NSNull()], "in_service must be true or false"),
            (["slot": 50, "in_service": true], "out of range"),
        ]
        for (body, mention) in cases {
            expectRefused(try verify("slot", body), .malformed, mentioning: mention)
        }
    }

    /// A command's fields are read for its own topic only: a slot payload on the unlock topic
    /// lacks operator_id and reason.
    @Test func payloadOfAnotherCommandIsMalformed() throws {
        expectRefused(try verify("unlock", ["slot": 3, "in_service": true]), .malformed, mentioning: "missing operator_id")
        expectRefused(try verify("slot", ["slot": 3, "operator_id": "t", "reason": "r"]), .malformed, mentioning: "missing in_service")
        expectRefused(try verify("swap", ["slot": 3, "in_service": true]), .malformed, mentioning: "missing customer_id")
    }

    // MARK: ping

    @Test func pingIgnoresExtraFields() throws {
        #expect(try verify("ping", ["anything": [1, 2, 3]]).command?.body == .ping)
    }
}
