// Where and how the gateway reaches Odoo's usage-log endpoint (shared/specs/odoo-usage-log.md).

/// Connection settings for ``OdooClient``. The API key never appears in `description`, `debugDescription`
/// or a mirror of this value.
public struct OdooConfiguration: Sendable {
    /// `https://odoo.example.com` (HTTP only on loopback in development); the path is appended.
    public var baseURL: String
    /// An Odoo user API key (scope `rpc`), sent as `Authorization: bearer <key>`.
    public var apiKey: String
    /// Sent as `X-Odoo-Database` when non-empty.
    public var database: String?
    /// Seconds for the whole request: connect, send, answer and body.
    public var requestTimeout: Double = 15
    /// Seconds to establish a connection (TCP and TLS).
    public var connectTimeout: Double = 5
    /// A PEM file of extra trusted CA certificates, added to the system trust store.
    public var caFile: String?
    /// At most this many requests in flight at once (a bound on connections too).
    public var maxConcurrentRequests: Int = 4

    public init(baseURL: String, apiKey: String) {
        self.baseURL = baseURL
        self.apiKey = apiKey
    }

    /// The usage-log endpoint's full URL.
    public var usageLogURL: String {
        var base = baseURL
        while base.hasSuffix("/") { base.removeLast() }
        return base + OdooRequest.path
    }
}

extension OdooConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        "OdooConfiguration(baseURL: \(baseURL), apiKey: <redacted>, database: \(database ?? "-"), "
            + "requestTimeout: \(requestTimeout), connectTimeout: \(connectTimeout), caFile: \(caFile ?? "-"), "
            + "maxConcurrentRequests: \(maxConcurrentRequests))"
    }
    public var debugDescription: String { description }
    public var customMirror: Mirror {
        Mirror(self, children: [
            "baseURL": baseURL, "apiKey": "<redacted>", "database": database as Any,
            "requestTimeout": requestTimeout, "connectTimeout": connectTimeout, "caFile": caFile as Any,
            "maxConcurrentRequests": maxConcurrentRequests,
        ])
    }
}

/// Why an ``OdooClient`` could not be made. Never carries the API key.
public enum OdooConfigurationError: Error, Equatable, CustomStringConvertible {
    case invalidBaseURL(String)
    case emptyAPIKey
    case caFileUnreadable(String)
    case invalidSetting(String)

    public var description: String {
        switch self {
        case .invalidBaseURL(let url): return "Odoo base URL must be http:// or https:// with a host: \(url)"
        case .emptyAPIKey: return "Odoo API key is empty"
        case .caFileUnreadable(let path): return "Odoo CA file is not a readable PEM certificate file: \(path)"
        case .invalidSetting(let what): return "Odoo configuration: \(what)"
        }
    }
}
