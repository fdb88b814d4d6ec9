// The only Swift in swapgate that speaks HTTP: POSTs usage records to Odoo over libcurl (HTTPTransport, on OpenSSL:
// the board's one TLS stack) and classifies every answer and every failure (OdooResponseClassifier).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// Sends usage records to `POST /api/subscription/usage_log`. One instance owns one ``HTTPTransport`` (its thread,
/// its easy handles and its kept-alive connections); call ``shutdown()`` before dropping it (a client dropped
/// without it stops its thread in deinit).
///
/// Trust: certificates are verified (peer and host name) against the system trust store; `caFile` adds its
/// certificates to that store, it does not replace it (with libcurl, CURLOPT_CAINFO_BLOB = the file plus the system
/// bundle, and the system CA directory stays in use). Redirects are answers (3xx → transient), never followed.
public final class OdooClient: Sendable {
    public let configuration: OdooConfiguration
    /// Largest response body read; a longer one is a transient failure.
    public static let maxResponseBytes = 1 << 20

    private let transport: HTTPTransport
    private let limiter: AsyncLimiter
    private let invalidHeaders: Bool

    public init(configuration: OdooConfiguration) throws {
        let c = configuration
        guard let parsed = URL(string: c.baseURL), let scheme = parsed.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = parsed.host, !host.isEmpty else {
            throw OdooConfigurationError.invalidBaseURL(c.baseURL)
        }
        guard !c.apiKey.isEmpty else { throw OdooConfigurationError.emptyAPIKey }
        guard c.requestTimeout > 0, c.requestTimeout.isFinite else {
            throw OdooConfigurationError.invalidSetting("requestTimeout must be positive")
        }
        guard c.connectTimeout > 0, c.connectTimeout.isFinite else {
            throw OdooConfigurationError.invalidSetting("connectTimeout must be positive")
        }
        guard c.maxConcurrentRequests >= 1 else {
            throw OdooConfigurationError.invalidSetting("maxConcurrentRequests must be at least 1")
        }
        var extraRoots: [UInt8]?
        if let caFile = c.caFile, !caFile.isEmpty {
            guard let pem = FileManager.default.contents(atPath: caFile),
                  String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw OdooConfigurationError.caFileUnreadable(caFile)
            }
            extraRoots = Array(pem)
        }
        // A header value with a line break or NUL would forge headers: such a client sends nothing (transient).
        let unsafeValue = ([c.apiKey, c.database ?? ""]).contains { v in
            v.unicodeScalars.contains { $0 == "\r" || $0 == "\n" || $0 == "\0" }
        }
        self.invalidHeaders = unsafeValue
        var headers = ["Content-Type: application/json", "Accept: application/json", "Authorization: bearer \(c.apiKey)"]
        if let db = c.database, !db.isEmpty { headers.append("X-Odoo-Database: \(db)") }
        let settings = HTTPTransportSettings(
            url: c.usageLogURL, headers: headers,
            connectTimeoutMilliseconds: Self.milliseconds(c.connectTimeout),
            requestTimeoutMilliseconds: Self.milliseconds(c.requestTimeout),
            extraTrustRootsPEM: extraRoots, maxResponseBytes: Self.maxResponseBytes,
            maxConnections: c.maxConcurrentRequests)
        do {
            self.transport = try HTTPTransport(settings: settings)
        } catch {
            throw OdooConfigurationError.invalidSetting("cannot start the HTTP client: \(error)")
        }
        self.configuration = c
        self.limiter = AsyncLimiter(limit: c.maxConcurrentRequests)
    }

    deinit { transport.stop() }

    private static func milliseconds(_ seconds: Double) -> Int { max(1, Int(min(seconds, 86_400) * 1000)) }

    /// Sends one record and classifies the answer. Never throws: transport failures, timeouts and
    /// cancellation are `.transient`. No more than `maxConcurrentRequests` sends run at once; the
    /// others wait their turn (the wait does not count against `requestTimeout`).
    public func send(_ record: UsageRecord, rpcID: Int) async -> UsageOutcome {
        guard await limiter.acquire() else { return .transient(reason: "cancelled", retryAfter: nil) }
        defer { limiter.release() }
        let body = OdooRequest.body(record, rpcID: rpcID)
        let timeout = configuration.requestTimeout
        let outcome = await withTaskGroup(of: UsageOutcome?.self) { group in
            group.addTask { await self.perform(body) }
            group.addTask {
                try? await Task.sleep(nanoseconds: UInt64(timeout * 1_000_000_000))
                return Task.isCancelled ? nil : .transient(reason: "timed out after \(timeout) s", retryAfter: nil)
            }
            var first: UsageOutcome?
            while first == nil, let next = await group.next() { first = next }
            group.cancelAll()
            return first ?? .transient(reason: "cancelled", retryAfter: nil)
        }
        return redacted(outcome)
    }

    /// Closes connections and stops the client; sends afterwards are `.transient`.
    public func shutdown() async throws {
        await transport.shutdown()
    }

    private func perform(_ body: [UInt8]) async -> UsageOutcome {
        if invalidHeaders {
            return .transient(reason: "the API key or database name contains a line break or NUL", retryAfter: nil)
        }
        switch await transport.post(body) {
        case .response(let status, let headers, let bytes):
            return OdooResponseClassifier.classify(status: status, headers: headers, body: bytes)
        case .failure(let reason):
            if Task.isCancelled { return .transient(reason: "cancelled", retryAfter: nil) }
            return .transient(reason: reason, retryAfter: nil)
        }
    }

    /// Belt and braces: no outcome text ever carries the API key, whatever a server echoes.
    private func redacted(_ outcome: UsageOutcome) -> UsageOutcome {
        let key = configuration.apiKey
        func clean(_ s: String) -> String { key.isEmpty ? s : s.replacing(key, with: "<redacted>") }
        switch outcome {
        case .recorded, .duplicate: return outcome
        case .rejected(let name, let message): return .rejected(errorName: clean(name), message: clean(message))
        case .credentials(let reason): return .credentials(reason: clean(reason))
        case .transient(let reason, let retryAfter): return .transient(reason: clean(reason), retryAfter: retryAfter)
        }
    }
}
