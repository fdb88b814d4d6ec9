import Foundation
import ABSProtocol

/// RFC 3339 UTC timestamps with milliseconds, as the ABS contract wants: `2026-11-22T10:04:31.250Z`.
/// One formatter and parser for the whole project: ABSProtocol's `RFC3339` (hand-written, thread-safe).
public enum Timestamp {
    public static func rfc3339(_ date: Date) -> String { RFC3339.format(date) }

    /// Parses RFC 3339 (with or without fractional seconds, `Z` or an offset).
    public static func parse(_ s: String) -> Date? { RFC3339.parse(s) }

    /// Dates in JSON as RFC 3339 strings: the control API's one date strategy, for the daemon's answers and
    /// for swapctl's decoding and `--json` output (nested dates included, e.g. a usage record's `occurredAt`).
    public static let encodingStrategy: JSONEncoder.DateEncodingStrategy = .custom { date, encoder in
        var c = encoder.singleValueContainer()
        try c.encode(RFC3339.format(date))
    }

    public static let decodingStrategy: JSONDecoder.DateDecodingStrategy = .custom { decoder in
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = RFC3339.parse(s) else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(s)") }
        return d
    }
}

/// The control API's JSON coders (docs/control-api.md): sorted keys, unescaped slashes, RFC 3339 dates.
public enum ControlJSON {
    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = Timestamp.encodingStrategy
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = Timestamp.decodingStrategy
        return d
    }
}

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
