import Foundation
import ABSProtocol

/// RFC 3339 UTC timestamps with milliseconds, as the ABS contract wants: `2026-11-22T10:04:31.250Z`.
/// One formatter and parser for the whole project: StationSupport's `RFC3339` (hand-written, thread-safe).
public enum Timestamp {
    public static func rfc3339(_ date: Date) -> String { RFC3339.format(date) }

    /// Parses RFC 3339 (with or without fractional seconds, `Z` or an offset).
    public static func parse(_ s: String) -> Date? { RFC3339.parse(s) }
}

// The control API's JSON coders and date strategy are ControlProtocol's `ControlJSON`.

/// A JSON object built in code and serialised with sorted keys (stable bytes for the same content).
public typealias JSONObject = [String: any Sendable]

public enum JSON {
    public static func encode(_ object: JSONObject) -> [UInt8] {
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return Array("{}".utf8)
        }
        return Array(data)
    }
    public static func decode(_ bytes: [UInt8]) -> JSONObject? {
        (try? JSONSerialization.jsonObject(with: Data(bytes))) as? JSONObject
    }
    /// Rounds to `digits` fractional digits so payloads do not carry float noise (54.120000000000005).
    public static func round(_ v: Double, _ digits: Int = 1) -> Double {
        let p = pow(10, Double(digits))
        return (v * p).rounded() / p
    }
}
