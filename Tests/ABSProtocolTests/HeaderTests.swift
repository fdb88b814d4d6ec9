import ABSProtocol
import Foundation
import Testing

@Suite struct HeaderTests {
    let key = ABSKey()

    func verify(_ object: [String: Any], command: String = "ping", policy: CommandPolicy = CommandPolicy()) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier(policy).verify(command: command, payload: try key.envelope(json(object)), retained: false, now: testNow)
    }

    @Test func expiredCommandIsRefused() throws {
        let result = try verify(header(issued: -600, expires: -1))
        expectRefused(result, .expired, mentioning: "expired at")
        #expect(result.refusal?.requestID == "r-91", "a verified request_id is echoed")
    }

    @Test func expiryIsExclusive() throws {
        expectRefused(try verify(header(issued: -60, expires: 0)), .expired)
        #expect(try verify(header(issued: -60, expires: 0.001)).command != nil)
    }

    @Test func issuedBeyondSkewInTheFutureIsRefused() throws {
        let result = try verify(header(issued: 121, expires: 600))
        expectRefused(result, .expired, mentioning: "future", "clock skew of 120 s")
    }

    @Test func issuedWithinSkewIsAccepted() throws {
        #expect(try verify(header(issued: 119, expires: 600)).command != nil)
        #expect(try verify(header(issued: 120, expires: 600)).command != nil)
        var policy = CommandPolicy()
        policy.maxClockSkew = 5
        expectRefused(try verify(header(issued: 6, expires: 600), policy: policy), .expired, mentioning: "clock skew of 5 s")
        #expect(try verify(header(issued: 4, expires: 600), policy: policy).command != nil)
    }

    @Test func lifetimeMustBeSane() throws {
        expectRefused(try verify(header(issued: -5, expires: 86_400)), .malformed, mentioning: "lifetime", "86400")
        #expect(try verify(header(issued: -5, expires: 86_395)).command != nil)
        expectRefused(try verify(header(issued: 60, expires: 30)), .malformed, mentioning: "after issued_at")
        var policy = CommandPolicy()
        policy.maxLifetime = 60
        expectRefused(try verify(header(issued: -5, expires: 56), policy: policy), .malformed, mentioning: "lifetime")
    }

    @Test func missingOrBadRequestIDIsMalformed() throws {
        var h = header()
        h.removeValue(forKey: "request_id")
        let missing = try verify(h)
        expectRefused(missing, .malformed, mentioning: "missing request_id")
        #expect(missing.refusal?.requestID == nil)
        for bad: Any in ["", String(repeating: "r", count: 129), "r\u{1}x", "r-é", 42, NSNull()] {
            expectRefused(try verify(merged(header(), ["request_id": bad])), .malformed, mentioning: "request_id")
        }
        #expect(try verify(header(String(repeating: "r", count: 128))).command?.header.requestID.count == 128)
        #expect(try verify(header("r 1 ~!")).command != nil)
    }

    @Test func missingOrBadTimesAreMalformed() throws {
        for field in ["issued_at", "expires_at"] {
            var h = header()
            h.removeValue(forKey: field)
            let result = try verify(h)
            expectRefused(result, .malformed, mentioning: "missing \(field)")
            #expect(result.refusal?.requestID == "r-91")
            for bad: Any in ["2026-11-18", "yesterday", "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2026-11-18T24:00:00Z",
                             "2026-11-18T10:00:60Z", "2026-11-18T10:00:00", "2026-11-18T10:00:00+5:00", "2026-11-18T10:00:00.Z",
                             "2026-11-18 10:00:00Z", "2026-11-18T10:00:00Zx", 1_795_000_000, true] {
                expectRefused(try verify(merged(header(), [field: bad])), .malformed, mentioning: field)
            }
        }
    }

    /// RFC 3339 with or without fractional seconds, 'Z' or an offset, all meaning the same instant.
    @Test func timeFormats() throws {
        let expiry = testNow.addingTimeInterval(300)
        let base = Int64(expiry.timeIntervalSince1970)
        #expect(Double(base) == expiry.timeIntervalSince1970)
        let utc = rfc3339(expiry).replacingOccurrences(of: ".000Z", with: "Z")
        let forms = [
            utc,
            utc.replacingOccurrences(of: "Z", with: ".000Z"),
            utc.replacingOccurrences(of: "Z", with: ".0Z"),
            utc.replacingOccurrences(of: "Z", with: ".000000000Z"),
            utc.replacingOccurrences(of: "Z", with: "+00:00"),
            utc.replacingOccurrences(of: "Z", with: "-00:00"),
            utc.replacingOccurrences(of: "T", with: "t").replacingOccurrences(of: "Z", with: "z"),
            shifted(utc, hours: 1, sign: "+"),
            shifted(utc, hours: -3, sign: "-"),
        ]
        for form in forms {
            let result = try verify(merged(header(), ["expires_at": form]))
            #expect(result.command?.header.expiresAt == expiry, "\(form): \(String(describing: result.refusal))")
        }
        let fractional = try verify(merged(header(), ["expires_at": utc.replacingOccurrences(of: "Z", with: ".25Z")]))
        #expect(fractional.command?.header.expiresAt == expiry.addingTimeInterval(0.25))
    }

    /// `utc` rewritten in local time `hours` from UTC, with that offset.
    private func shifted(_ utc: String, hours: Int, sign: String) -> String {
        let f = ISO8601DateFormatter()
        f.timeZone = TimeZone(secondsFromGMT: hours * 3600)
        f.formatOptions = [.withInternetDateTime]
        let date = ISO8601DateFormatter().date(from: utc)!
        let local = f.string(from: date)  // …+01:00 or …-03:00
        #expect(local.hasSuffix(String(format: "%@%02d:00", sign, abs(hours))), "\(local)")
        return local
    }

    @Test func versionMustBeOne() throws {
        #expect(try verify(merged(header(), ["v": 1])).command != nil)
        expectRefused(try verify(merged(header(), ["v": 2])), .malformed, mentioning: "version")
        expectRefused(try verify(merged(header(), ["v": "1"])), .malformed, mentioning: "v must be")
    }

    /// An optional "command" in the signed payload binds it to its topic.
    @Test func commandFieldMustMatchTheTopic() throws {
        #expect(try verify(merged(header(), ["command": "ping"])).command != nil)
        expectRefused(try verify(merged(header(), ["command": "unlock"])), .malformed, mentioning: "unlock", "ping topic")
    }

    /// An optional "station_id" must name this station when the policy knows it.
    @Test func stationIDMustMatchWhenKnown() throws {
        var policy = CommandPolicy()
        policy.stationID = "TG-LOME-0007"
        #expect(try verify(merged(header(), ["station_id": "TG-LOME-0007"]), policy: policy).command != nil)
        #expect(try verify(header(), policy: policy).command != nil)
        expectRefused(try verify(merged(header(), ["station_id": "TG-LOME-0008"]), policy: policy), .malformed, mentioning: "TG-LOME-0008")
        #expect(try verify(merged(header(), ["station_id": "TG-LOME-0008"])).command != nil, "no station id configured: not checked")
    }

    /// Header problems are reported before body problems.
    @Test func headerIsCheckedBeforeBody() throws {
        let expiredAndBad = merged(header(issued: -600, expires: -1), ["slot": "three", "in_service": true])
        expectRefused(try verify(expiredAndBad, command: "slot"), .expired)
    }

    @Test func duplicateKeysAreMalformed() throws {
        let text = "{\"request_id\":\"r-1\",\"request_id\":\"r-2\",\"issued_at\":\"\(rfc3339(testNow))\",\"expires_at\":\"\(rfc3339(testNow.addingTimeInterval(60)))\"}"
        let result = try key.verifier().verify(command: "ping", payload: try key.envelope(Array(text.utf8)), retained: false, now: testNow)
        expectRefused(result, .malformed, mentioning: "twice")
    }

    @Test func unknownFieldsAreIgnored() throws {
        let result = try verify(merged(header(), ["trace": ["a": [1, 2.5, "x", NSNull(), true]], "note": "hello"]))
        #expect(result.command?.body == .ping, "\(String(describing: result.refusal))")
    }
}
