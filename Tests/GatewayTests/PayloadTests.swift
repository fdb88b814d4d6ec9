import Foundation
import GatewayCore
import StationStore
import Testing

/// The event envelope and timestamps are built by hand (hot path); they must equal what a JSON library reads.
@Suite struct PayloadTests {
    @Test func eventEnvelopeIsTheContractsJSON() throws {
        let id = UUID()
        let ts = Date(timeIntervalSince1970: 1_795_000_000.25)
        let e = StoredEvent(seq: 1042, eventID: id, type: "swap.completed", timestamp: ts,
                            data: Array(#"{"slot":4,"note":"a \"quoted\" \\ value"}"#.utf8), sentAt: nil)
        let bytes = Payloads.event(e, stationID: "TG-LOME-0007")
        let obj = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(obj["v"] as? Int == 1)
        #expect(obj["seq"] as? Int == 1042)
        #expect(obj["event_id"] as? String == id.uuidString.lowercased())
        #expect(obj["type"] as? String == "swap.completed")
        #expect(obj["station_id"] as? String == "TG-LOME-0007")
        #expect(obj["ts"] as? String == "2026-11-18T11:06:40.250Z")   // 1 795 000 000.25 s after 1970
        let data = try #require(obj["data"] as? [String: Any])
        #expect(data["slot"] as? Int == 4)
        #expect(data["note"] as? String == #"a "quoted" \ value"#)
    }

    @Test func timestampsMatchAnISOFormatter() {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        f.timeZone = TimeZone(identifier: "UTC")
        for seconds in [0.0, 951_782_400.001, 1_795_000_000.999, 1_709_251_199.5, 4_102_444_799.123] {
            let d = Date(timeIntervalSince1970: seconds)
            #expect(RFC3339.format(d) == f.string(from: d), "\(seconds)")
        }
    }
}
