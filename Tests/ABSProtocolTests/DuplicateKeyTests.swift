import ABSProtocol
import Foundation
import Testing

/// A key twice in one JSON object is `malformed` at every level of a signed command, also in fields the
/// command does not use (issue 9 item 17): an unknown key twice at the top, inside an unknown object, inside
/// an array of objects, inside an entitlement record.
@Suite struct DuplicateKeyTests {
    let key = ABSKey()

    func verify(_ text: String, command: String) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier().verify(command: command, payload: try key.envelope(Array(text.utf8)), retained: false, now: testNow)
    }

    var headerFields: String {
        "\"request_id\":\"r-1\",\"issued_at\":\"\(rfc3339(testNow))\",\"expires_at\":\"\(rfc3339(testNow.addingTimeInterval(60)))\""
    }

    @Test(arguments: [
        #""note":1,"note":2"#,                                  // unknown key twice at the top
        #""trace":{"a":1,"a":1}"#,                              // inside an ignored object
        #""trace":[{"x":{"y":[{"k":true,"k":false}]}}]"#,        // deep inside an ignored array
        #""trace":{"a":1,"b":{},"a":{}}"#,                      // same key, different types
    ])
    func aKeyTwiceAnywhereIsMalformed(extra: String) throws {
        let result = try verify("{\(headerFields),\(extra)}", command: "ping")
        expectRefused(result, .malformed, mentioning: "twice")
        let slot = try verify("{\(headerFields),\"slot\":1,\"in_service\":true,\(extra)}", command: "slot")
        expectRefused(slot, .malformed, mentioning: "twice")
    }

    @Test func anUnknownKeyTwiceInsideAnEntitlementRecordIsMalformed() throws {
        let r = String(decoding: json(record(9)), as: UTF8.self).dropLast() + ",\"extra\":1,\"extra\":2}"
        let text = "{\(headerFields),\"kind\":\"snapshot\",\"version\":1,\"entitlements\":[\(r)]}"
        expectRefused(try verify(text, command: "entitlements"), .malformed, mentioning: "\"extra\" appears twice")
    }

    @Test func theSameKeyInDifferentObjectsIsFine() throws {
        let text = "{\(headerFields),\"trace\":{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}}"
        #expect(try verify(text, command: "ping").command != nil)
        // Many keys in one object (past the linear check): still exact.
        let many = (0 ..< 200).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(try verify("{\(headerFields),\"trace\":{\(many)}}", command: "ping").command != nil)
        expectRefused(try verify("{\(headerFields),\"trace\":{\(many),\"k150\":0}}", command: "ping"), .malformed, mentioning: "\"k150\" appears twice")
    }
}
