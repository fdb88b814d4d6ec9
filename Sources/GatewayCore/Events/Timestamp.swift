import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// RFC 3339 UTC timestamps with milliseconds, as the ABS contract wants: `2026-11-22T10:04:31.250Z`.
/// Formatted by hand with gmtime_r: thread-safe and allocation-light, unlike a shared DateFormatter.
public enum Timestamp {
    public static func rfc3339(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var secs = time_t(ms / 1000)
        var t = tm()
        gmtime_r(&secs, &t)
        // Digits by hand: String(format:) costs more than everything else here.
        var b = [UInt8](repeating: 0, count: 24)
        func put(_ v: Int, _ at: Int, _ width: Int) {
            var v = v
            for i in stride(from: at + width - 1, through: at, by: -1) { b[i] = UInt8(48 + v % 10); v /= 10 }
        }
        put(Int(t.tm_year) + 1900, 0, 4); b[4] = 45; put(Int(t.tm_mon) + 1, 5, 2); b[7] = 45; put(Int(t.tm_mday), 8, 2)
        b[10] = 84; put(Int(t.tm_hour), 11, 2); b[13] = 58; put(Int(t.tm_min), 14, 2); b[16] = 58; put(Int(t.tm_sec), 17, 2)
        b[19] = 46; put(Int(((ms % 1000) + 1000) % 1000), 20, 3); b[23] = 90
        return String(decoding: b, as: UTF8.self)
    }

    /// Parses RFC 3339 (with or without fractional seconds, `Z` or an offset).
    public static func parse(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let d = f.date(from: s) { return d }
        f.formatOptions = [.withInternetDateTime]
        return f.date(from: s)
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
