#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationSupport

/// The control API's JSON coders (docs/control-api.md): sorted keys, unescaped slashes, and one date strategy,
/// RFC 3339 strings, for the daemon's answers and for swapctl's decoding and `--json` output (nested dates
/// included, e.g. a usage record's `occurredAt`).
public enum ControlJSON {
    public static let dateEncodingStrategy: JSONEncoder.DateEncodingStrategy = .custom { date, encoder in
        var c = encoder.singleValueContainer()
        try c.encode(RFC3339.format(date))
    }

    public static let dateDecodingStrategy: JSONDecoder.DateDecodingStrategy = .custom { decoder in
        let c = try decoder.singleValueContainer()
        let s = try c.decode(String.self)
        guard let d = RFC3339.parse(s) else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "not an RFC 3339 time: \(s)") }
        return d
    }

    public static func encoder(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.dateEncodingStrategy = dateEncodingStrategy
        return e
    }

    public static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = dateDecodingStrategy
        return d
    }
}
