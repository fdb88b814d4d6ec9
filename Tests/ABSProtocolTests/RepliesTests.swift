import ABSProtocol
import Foundation
import StationDomain
import Testing

@Suite struct RepliesTests {
    let now = Date(timeIntervalSince1970: 1_795_000_000.25)

    @Test func refusalReplyIsExactBytes() {
        let bytes = Reply(requestID: "r-91", ok: false, code: .quotaExhausted, message: "60 of 60 swaps used", ts: now).bytes
        let expected = #"{"code":"quota_exhausted","message":"60 of 60 swaps used","ok":false,"request_id":"r-91","ts":"2026-11-18T11:06:40.250Z","v":1}"#
        #expect(String(decoding: bytes, as: UTF8.self) == expected)
    }

    @Test func okReplyWithDataHasSortedKeys() throws {
        struct Payload: Encodable {
            var zeta = 1, alpha = "a", nested: JSONValue = ["b": true, "a": nil], list = [3, 1, 2], energy = 1.5
            var at = Date(timeIntervalSince1970: 0), none: String? = nil, some: String? = "x", nan = Double.nan
            var big = Int64.max, neg = -7
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: ContractKey.self)
                try c.encode(zeta, forKey: "zeta"); try c.encode(alpha, forKey: "alpha"); try c.encode(nested, forKey: "nested")
                try c.encode(list, forKey: "list"); try c.encode(energy, forKey: "energy"); try c.encode(at, forKey: "at")
                try c.encodeNullable(none, forKey: "none"); try c.encodeNullable(some, forKey: "some"); try c.encode(nan, forKey: "nan")
                try c.encode(big, forKey: "big"); try c.encode(neg, forKey: "neg")
            }
        }
        let bytes = Reply(requestID: nil, ok: true, data: Payload(), ts: now).bytes
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text == #"{"code":null,"data":{"alpha":"a","at":"1970-01-01T00:00:00.000Z","big":9223372036854775807,"energy":1.5,"list":[3,1,2],"nan":null,"neg":-7,"nested":{"a":null,"b":true},"none":null,"some":"x","zeta":1},"message":null,"ok":true,"request_id":null,"ts":"2026-11-18T11:06:40.250Z","v":1}"#)
        // And it is JSON a standard parser reads back.
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object["v"] as? Int == 1)
    }

    @Test func stringsAreEscaped() throws {
        let message = "quote \" backslash \\ newline \n tab \t nul \u{0} bell \u{7} é 🔋"
        let bytes = Reply(requestID: "r-1", ok: false, code: .malformed, message: message, ts: now).bytes
        let object = try #require(try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any])
        #expect(object["message"] as? String == message)
        #expect(!bytes.contains(0x0A), "raw newline in the reply")
    }

    @Test func timestampFormat() {
        func ts(_ t: Double) -> String {
            let text = String(decoding: Reply(requestID: nil, ok: true, ts: Date(timeIntervalSince1970: t)).bytes, as: UTF8.self)
            return String(text.split(separator: "\"ts\":\"")[1].prefix(24))
        }
        #expect(ts(0) == "1970-01-01T00:00:00.000Z")
        #expect(ts(951_782_400.999_9) == "2000-02-29T00:00:00.999Z")
        #expect(ts(-0.001) == "1969-12-31T23:59:59.999Z")
        #expect(ts(4_102_444_799.5) == "2099-12-31T23:59:59.500Z")
    }

    @Test func refusalHelper() throws {
        let refusal = CommandRefusal(code: .needSnapshot, message: "base_version 5 ≠ cache 7", requestID: "r-2")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(Reply(refusal: refusal, ts: now).bytes)) as? [String: Any])
        #expect(object["code"] as? String == "need_snapshot")
        #expect(object["ok"] as? Bool == false)
        #expect(object["request_id"] as? String == "r-2")
        #expect(object["message"] as? String == "base_version 5 ≠ cache 7")
    }

    @Test func refusalCodesAreTheContractsCodes() {
        let contract = ["bad_signature", "expired", "replayed", "malformed", "unknown_customer", "inactive", "outside_validity",
                        "not_in_network", "quota_exhausted", "custody_limit", "no_ready_battery", "no_empty_slot",
                        "station_busy", "cache_too_stale", "safe_mode", "invalid_slot", "need_snapshot"]
        #expect(ReplyCode.allCases.map(\.rawValue) == contract)
        // The swap decision's codes are reply codes of the same spelling.
        for c in SwapRefusalCode.allCases { #expect(ReplyCode(c).rawValue == c.rawValue) }
    }
}
