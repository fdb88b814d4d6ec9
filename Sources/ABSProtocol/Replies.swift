import Foundation

/// Replies to commands, published on `dt/V01/BSS/{sid}/reply` (abs-mqtt.md "Replies").
public enum Replies {
    /// `{"code":…,"data":{…},"message":…,"ok":…,"request_id":…,"ts":…,"v":1}`: keys sorted at every
    /// level, `ts` RFC 3339 UTC with milliseconds. `request_id`, `code` and `message` are `null`
    /// when nil; `data` is left out when nil.
    ///
    /// `data` values may be String, Bool, any integer, Float/Double (non-finite → null), Date
    /// (→ RFC 3339 ms), nil/Optional, arrays and [String: …] dictionaries of these, nested up to
    /// 16 levels; anything else is written as its description string.
    public static func reply(requestID: String?, ok: Bool, code: String?, message: String?,
                             data: [String: any Sendable]?, now: Date) -> [UInt8] {
        var w = JSONWriter()
        w.out.append(UInt8(ascii: "{"))
        w.key("code", first: true); w.optionalString(code)
        if let data {
            w.key("data"); w.object(data, depth: 1)
        }
        w.key("message"); w.optionalString(message)
        w.key("ok"); w.raw(ok ? "true" : "false")
        w.key("request_id"); w.optionalString(requestID)
        w.key("ts"); w.string(RFC3339.format(now))
        w.key("v"); w.raw("1")
        w.out.append(UInt8(ascii: "}"))
        return w.out
    }

    /// The reply to a refused command: `ok` false, the refusal's code, message and request_id.
    public static func refusal(_ refusal: CommandRefusal, now: Date) -> [UInt8] {
        reply(requestID: refusal.requestID, ok: false, code: refusal.code.rawValue, message: refusal.message,
              data: nil, now: now)
    }
}

/// A minimal JSON writer with sorted keys.
struct JSONWriter {
    static let maxDepth = 16
    var out: [UInt8] = []

    mutating func raw(_ s: String) { out.append(contentsOf: s.utf8) }

    mutating func key(_ k: String, first: Bool = false) {
        if !first { out.append(UInt8(ascii: ",")) }
        string(k)
        out.append(UInt8(ascii: ":"))
    }

    mutating func optionalString(_ s: String?) {
        if let s { string(s) } else { raw("null") }
    }

    mutating func string(_ s: String) {
        out.append(UInt8(ascii: "\""))
        for u in s.unicodeScalars {
            switch u {
            case "\"": raw("\\\"")
            case "\\": raw("\\\\")
            case "\n": raw("\\n")
            case "\r": raw("\\r")
            case "\t": raw("\\t")
            case "\u{08}": raw("\\b")
            case "\u{0C}": raw("\\f")
            default:
                if u.value < 0x20 || u.value == 0x7F || u == "\u{2028}" || u == "\u{2029}" {
                    let hex = String(u.value, radix: 16)
                    raw("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
                } else {
                    out.append(contentsOf: UTF8.encode(u)!)
                }
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    mutating func object(_ dict: [String: Any], depth: Int) {
        out.append(UInt8(ascii: "{"))
        for (i, k) in dict.keys.sorted().enumerated() {
            key(k, first: i == 0)
            value(dict[k]!, depth: depth + 1)
        }
        out.append(UInt8(ascii: "}"))
    }

    mutating func value(_ v: Any, depth: Int) {
        guard depth <= Self.maxDepth else { raw("null"); return }
        // Optional first: `Any` may hold an Optional (e.g. a String? put in the dictionary).
        let mirror = Mirror(reflecting: v)
        if mirror.displayStyle == .optional {
            if let inner = mirror.children.first?.value { value(inner, depth: depth) } else { raw("null") }
            return
        }
        switch v {
        case let s as String: string(s)
        case let s as Substring: string(String(s))
        case let b as Bool: raw(b ? "true" : "false")
        case let i as any BinaryInteger: raw(String(describing: i))
        case let d as Double: raw(d.isFinite ? String(describing: d) : "null")
        case let f as Float: raw(f.isFinite ? String(describing: f) : "null")
        case let date as Date: string(RFC3339.format(date))
        case let dict as [String: Any]: object(dict, depth: depth)
        case let array as [Any]:
            out.append(UInt8(ascii: "["))
            for (i, e) in array.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                value(e, depth: depth + 1)
            }
            out.append(UInt8(ascii: "]"))
        case is NSNull: raw("null")
        default: string(String(describing: v))
        }
    }
}
