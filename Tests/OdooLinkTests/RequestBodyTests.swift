import Foundation
import Testing
import StationDomain
@testable import OdooLink

@Suite struct RequestBodyTests {
    @Test func exactEnvelope() {
        let record = sampleRecord(key: "6f1c1d0e-4a7b-4b8e-9d5e-2f9a8a1b7c10", energy: 1.94449)
        let text = String(decoding: OdooRequest.body(record, rpcID: 17), as: UTF8.self)
        let expected = #"{"jsonrpc":"2.0","method":"call","id":17,"params":{"#
            + #""idempotency_key":"6f1c1d0e-4a7b-4b8e-9d5e-2f9a8a1b7c10","subscription_ref":"SUB/2026/00042","#
            + #""plan_instance_id":"pi-000123","customer_id":"cust-789","station_id":"TG-LOME-0007","#
            + #""outlet_code":"TG-LM-001","occurred_at":"2026-11-22T10:04:31.250Z","recorded_offline":false,"#
            + #""lines":[{"service_id":"service-swap-count","quantity":1,"unit":"1"},"#
            + #"{"service_id":"service-energy-gage","quantity":1.944,"unit":"kWh"}],"#
            + #""swap":{"swap_id":"6f1c1d0e-4a7b-4b8e-9d5e-2f9a8a1b7c10","#
            + #""battery_out":{"id":"B45-000311","soc_pct":98.7,"slot":4},"#
            + #""battery_in":{"id":"B45-000123","soc_pct":9.5,"slot":9}}}}"#
        #expect(text == expected)
    }

    @Test func parsesAsTheContractsFields() throws {
        var record = sampleRecord(key: "k-1", batteryIn: false)
        record.recordedOffline = true
        let json = try #require(try JSONSerialization.jsonObject(with: Data(OdooRequest.body(record, rpcID: 99))) as? [String: Any])
        #expect(Set(json.keys) == ["jsonrpc", "method", "id", "params"])
        #expect(json["jsonrpc"] as? String == "2.0")
        #expect(json["method"] as? String == "call")
        #expect(json["id"] as? Int == 99)
        let params = try #require(json["params"] as? [String: Any])
        #expect(Set(params.keys) == ["idempotency_key", "subscription_ref", "plan_instance_id", "customer_id",
                                     "station_id", "outlet_code", "occurred_at", "recorded_offline", "lines", "swap"])
        #expect(params["recorded_offline"] as? Bool == true)
        let swap = try #require(params["swap"] as? [String: Any])
        #expect(Set(swap.keys) == ["swap_id", "battery_out", "battery_in"])
        #expect(swap["battery_in"] is NSNull)
        let lines = try #require(params["lines"] as? [[String: Any]])
        #expect(lines.count == 2)
        #expect(Set(lines[0].keys) == ["service_id", "quantity", "unit"])
    }

    @Test func quantitiesRoundToThreeDecimals() {
        let cases: [(Double, String)] = [
            (1.94449, "1.944"), (1.9446, "1.945"), (1, "1"), (0, "0"), (-0.0, "0"), (2.5, "2.5"),
            (12.3456, "12.346"), (0.1 + 0.2, "0.3"), (0.0004, "0"), (0.0006, "0.001"), (-1.5, "-1.5"),
            (1234567.0001, "1234567"), (0.05, "0.05"), (.nan, "null"), (.infinity, "null"),
        ]
        for (value, text) in cases {
            #expect(OdooRequest.decimal3(value) == text, "\(value)")
        }
    }

    @Test func occurredAtIsRFC3339UTCWithMilliseconds() {
        #expect(OdooRequest.rfc3339Milliseconds(exampleDate) == "2026-11-22T10:04:31.250Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_795_341_871)) == "2026-11-22T10:04:31.000Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_795_341_871.9994)) == "2026-11-22T10:04:31.999Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_795_341_871.9996)) == "2026-11-22T10:04:32.000Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 1_709_208_000.007)) == "2024-02-29T12:00:00.007Z")
    }

    @Test func stringsAreEscaped() throws {
        var record = sampleRecord(key: "k")
        record.outletCode = "Lomé \"north\" \\ \n\t\u{1}"
        let body = OdooRequest.body(record, rpcID: 1)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any])
        let params = try #require(json["params"] as? [String: Any])
        #expect(params["outlet_code"] as? String == record.outletCode)
        #expect(String(decoding: body, as: UTF8.self).contains(#""Lomé \"north\" \\ \n\t\u0001""#))
    }
}
