// Turns one HTTP answer of the usage-log endpoint into a UsageOutcome, per the contract's tables.
// Pure: no I/O, no clock except the `now` used for a Retry-After given as an HTTP date.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

public enum OdooResponseClassifier {
    /// `error.data.name` values meaning the record is wrong for Odoo.
    public static let rejectionNames: Set<String> = [
        "odoo.exceptions.ValidationError", "odoo.exceptions.UserError", "odoo.exceptions.MissingError",
    ]
    /// `error.data.name` values meaning a credentials problem.
    public static let credentialNames: Set<String> = [
        "odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError", "werkzeug.exceptions.Unauthorized",
        "odoo.http.SessionExpiredException",
    ]
    /// JSON-RPC `error.code` of an expired session.
    public static let sessionExpiredCode = 100

    public static func classify(status: Int, headers: [(String, String)], body: [UInt8]) -> UsageOutcome {
        classify(status: status, headers: headers, body: body, now: Date())
    }

    static func classify(status: Int, headers: [(String, String)], body: [UInt8], now: Date) -> UsageOutcome {
        switch status {
        case 401, 403:
            return .credentials(reason: "HTTP \(status)")
        case 429:
            return .transient(reason: "HTTP 429", retryAfter: retryAfter(headers, now: now))
        case 500...599:
            return .transient(reason: "HTTP \(status)", retryAfter: retryAfter(headers, now: now))
        case 200...299:
            return classifyJSONRPC(status: status, body: body)
        default:
            return .transient(reason: "HTTP \(status)", retryAfter: retryAfter(headers, now: now))
        }
    }

    private static func classifyJSONRPC(status: Int, body: [UInt8]) -> UsageOutcome {
        if body.isEmpty { return .transient(reason: "HTTP \(status) with an empty body", retryAfter: nil) }
        guard let json = try? JSONDecoder().decode(JSONValue.self, from: Data(body)) else {
            return .transient(reason: "HTTP \(status) with a body that is not JSON (\(snippet(body)))", retryAfter: nil)
        }
        guard case .object(let top) = json else {
            return .transient(reason: "HTTP \(status) with JSON that is not a JSON-RPC response", retryAfter: nil)
        }
        if let error = top["error"], error != .null {
            return classifyError(error)
        }
        if let result = top["result"] {
            guard case .object(let r) = result, case .string(let state)? = r["status"] else {
                return .transient(reason: "JSON-RPC result without a status", retryAfter: nil)
            }
            let id = r["usage_log_id"]?.intValue
            switch state {
            case "recorded": return .recorded(usageLogID: id)
            case "duplicate": return .duplicate(usageLogID: id)
            default: return .transient(reason: "JSON-RPC result with unknown status \(state.prefix(64))", retryAfter: nil)
            }
        }
        return .transient(reason: "JSON-RPC response with neither result nor error", retryAfter: nil)
    }

    private static func classifyError(_ error: JSONValue) -> UsageOutcome {
        guard case .object(let e) = error else {
            return .transient(reason: "JSON-RPC error that is not an object", retryAfter: nil)
        }
        let code = e["code"]?.intValue
        let topMessage = e["message"]?.stringValue
        var name: String?
        var message: String?
        if case .object(let data)? = e["data"] {
            name = data["name"]?.stringValue
            message = data["message"]?.stringValue
            if message == nil || message!.isEmpty, case .array(let args)? = data["arguments"] {
                message = args.compactMap(\.stringValue).first
            }
        }
        let text = String((message ?? topMessage ?? "").prefix(2000))
        if let name, rejectionNames.contains(name) {
            return .rejected(errorName: name, message: text)
        }
        if code == sessionExpiredCode {
            return .credentials(reason: "session expired (\(name ?? "code 100"))")
        }
        if let name, credentialNames.contains(name) {
            return .credentials(reason: text.isEmpty ? name : "\(name): \(text)")
        }
        let label = name ?? "JSON-RPC error code \(code.map(String.init) ?? "-")"
        return .transient(reason: text.isEmpty ? label : "\(label): \(text)", retryAfter: nil)
    }

    // MARK: Retry-After

    /// `Retry-After` in seconds from `now`: delta-seconds or an HTTP date (IMF-fixdate, RFC 850, asctime).
    /// Never negative; nil when absent or unreadable.
    static func retryAfter(_ headers: [(String, String)], now: Date) -> Double? {
        guard let raw = headers.first(where: { $0.0.lowercased() == "retry-after" })?.1 else { return nil }
        let value = HTTPDate.trimmingWhitespaces(raw)
        if !value.isEmpty, value.allSatisfy(\.isASCII), value.allSatisfy(\.isNumber) {
            return Double(value)
        }
        guard let date = httpDate(value) else { return nil }
        return max(0, date.timeIntervalSince(now))
    }

    static func httpDate(_ value: String) -> Date? { HTTPDate.parse(value) }

    private static func snippet(_ body: [UInt8]) -> String {
        // Each CR and LF scalar becomes a space (per scalar: "\r\n" is one Character, two spaces as before).
        var flat = String.UnicodeScalarView()
        for u in String(decoding: body.prefix(80), as: UTF8.self).unicodeScalars { flat.append(u == "\n" || u == "\r" ? " " : u) }
        let text = String(flat)
        return body.count > 80 ? text + "…" : text
    }
}

/// Any JSON value, decoded without Foundation's bridging ambiguities (true is never 1).
enum JSONValue: Decodable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .object(try c.decode([String: JSONValue].self)) }
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    var intValue: Int? {
        if case .number(let n) = self, n.rounded() == n, abs(n) < 9.0e15 { return Int(n) }
        return nil
    }
}
