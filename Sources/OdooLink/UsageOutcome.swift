// What became of one attempt to send a usage record (the contract's response tables).

/// The classified result of one `POST /api/subscription/usage_log`.
public enum UsageOutcome: Sendable, Equatable {
    /// Odoo recorded it: settled.
    case recorded(usageLogID: Int?)
    /// Odoo had recorded this idempotency key before: settled.
    case duplicate(usageLogID: Int?)
    /// `ValidationError`, `UserError`, `MissingError`: the record is wrong for Odoo. Stop retrying; keep it
    /// as rejected, visible to technicians, re-sendable by hand.
    case rejected(errorName: String, message: String)
    /// `AccessDenied`, `AccessError`, `werkzeug.exceptions.Unauthorized`, session expired (code 100),
    /// HTTP 401/403: keep the record queued, retry slowly, raise an alarm.
    case credentials(reason: String)
    /// Transport failures, timeouts, 429, 5xx, a 200 that is not a JSON-RPC answer, anything else:
    /// retry with backoff, not before `retryAfter` seconds when the server said so.
    case transient(reason: String, retryAfter: Double?)

    /// Odoo has the record (`recorded` or `duplicate`): it may leave the station.
    public var isSettled: Bool {
        switch self {
        case .recorded, .duplicate: return true
        default: return false
        }
    }

    /// Whether the sender should try this record again later (credentials and transient).
    public var shouldRetry: Bool {
        switch self {
        case .credentials, .transient: return true
        default: return false
        }
    }
}

extension UsageOutcome: CustomStringConvertible {
    public var description: String {
        switch self {
        case .recorded(let id): return "recorded(\(id.map(String.init) ?? "-"))"
        case .duplicate(let id): return "duplicate(\(id.map(String.init) ?? "-"))"
        case .rejected(let name, let message): return "rejected(\(name): \(message))"
        case .credentials(let reason): return "credentials(\(reason))"
        case .transient(let reason, let retryAfter):
            return "transient(\(reason)\(retryAfter.map { ", retry after \($0) s" } ?? ""))"
        }
    }
}
