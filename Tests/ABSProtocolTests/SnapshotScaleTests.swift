import ABSProtocol
import Foundation
import StationDomain
import Testing

/// A city: 100 000 entitlements in one signed snapshot. Times are printed, never asserted.
@Suite struct SnapshotScaleTests {
    static let count = 100_000

    /// The command JSON of a snapshot with `count` records (~38 MB), built as text for speed.
    static func snapshotJSON(count: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(count * 400 + 200)
        let issued = rfc3339(testNow.addingTimeInterval(-5)), expires = rfc3339(testNow.addingTimeInterval(600))
        out.append(contentsOf: #"{"entitlements":["#.utf8)
        for i in 0..<count {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            let n = String(i)
            let pad = String(repeating: "0", count: max(0, 6 - n.count)) + n
            let used = i % 61
            out.append(contentsOf: #"{"batteries_out":["B45-\#(pad)"],"battery_family":"MOBBAT-45AH","customer_id":"cust-\#(pad)","#.utf8)
            out.append(contentsOf: #""energy_quota_kwh":129.6,"energy_used_kwh":\#(Double(used) * 2.16),"max_batteries":1,"#.utf8)
            out.append(contentsOf: #""network_code":"SWAP-NETWORK-TG-LOME","overage_allowed":false,"plan_instance_id":"pi-\#(pad)","#.utf8)
            out.append(contentsOf: #""status":"active","subscription_ref":"SUB/2026/\#(pad)","swap_quota":60,"swaps_used":\#(used),"#.utf8)
            out.append(contentsOf: #""valid_from":"2026-11-01T00:00:00Z","valid_until":"2026-12-01T00:00:00.000+01:00","version":\#(i % 1000)}"#.utf8)
        }
        out.append(contentsOf: #"],"expires_at":"\#(expires)","issued_at":"\#(issued)","kind":"snapshot","request_id":"r-city","version":5120}"#.utf8)
        return out
    }

    @Test func hundredThousandRecordSnapshot() throws {
        let key = ABSKey()
        let command = Self.snapshotJSON(count: Self.count)
        let envelope = try key.envelope(command)
        print(String(format: "SnapshotScale: %d records, command %.1f MB, envelope %.1f MB",
                     Self.count, Double(command.count) / 1e6, Double(envelope.count) / 1e6))

        let verifier = try key.verifier()
        let clock = ContinuousClock()
        var result: Result<VerifiedCommand, CommandRefusal>!
        let signedTime = clock.measure {
            result = verifier.verify(command: "entitlements", payload: envelope, retained: false, now: testNow)
        }
        guard case .entitlementSnapshot(let version, let list, _)? = result.command?.body else {
            Issue.record("refused: \(String(describing: result.refusal))")
            return
        }
        #expect(version == 5120)
        #expect(list.count == Self.count)
        #expect(list[99_999].planInstanceID == "pi-099999")
        #expect(list[99_999].swapsUsed == 99_999 % 61)
        #expect(list[42].validUntil == ISO8601DateFormatter().date(from: "2026-11-30T23:00:00Z"))

        // The same bytes unsigned (no base64, no signature): the parse alone.
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        let unsigned = try key.verifier(policy)
        var bare: Result<VerifiedCommand, CommandRefusal>!
        let parseTime = clock.measure {
            bare = unsigned.verify(command: "entitlements", payload: command, retained: false, now: testNow)
        }
        #expect(bare.command?.body == result.command?.body)

        #if DEBUG
        let build = "debug"
        #else
        let build = "release"
        #endif
        print("SnapshotScale (\(build)): signed envelope verify+parse \(signedTime); bare command parse \(parseTime)")
    }

    /// One bad record deep inside a big snapshot: refused, and named.
    @Test func badRecordDeepInsideIsNamed() throws {
        let key = ABSKey()
        var text = String(decoding: Self.snapshotJSON(count: 5000), as: UTF8.self)
        text = text.replacingOccurrences(of: #""swaps_used":\#(4321 % 61),"valid_from":"2026-11-01T00:00:00Z","valid_until":"2026-12-01T00:00:00.000+01:00","version":321}"#,
                                         with: #""swaps_used":-1,"valid_from":"2026-11-01T00:00:00Z","valid_until":"2026-12-01T00:00:00.000+01:00","version":321}"#)
        let result = try key.verifier().verify(command: "entitlements", payload: try key.envelope(Array(text.utf8)), retained: false, now: testNow)
        expectRefused(result, .malformed, mentioning: "entitlements[4321]", "pi-004321", "swaps_used must be ≥ 0")
    }
}
