// The only Swift in swapgate that speaks HTTP: POSTs usage records to Odoo with async-http-client
// and classifies every answer and every failure (OdooResponseClassifier).
import AsyncHTTPClient
import Foundation
import StationDomain

/// Sends usage records to `POST /api/subscription/usage_log`. One instance owns one `HTTPClient`
/// (its connection pool, on swift-nio's shared event loop group); call ``shutdown()`` before dropping it.
public final class OdooClient: Sendable {
    public let configuration: OdooConfiguration
    /// Largest response body read; a longer one is a transient failure.
    public static let maxResponseBytes = 1 << 20

    private let http: HTTPClient
    private let url: String
    private let limiter: AsyncLimiter

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
        var settings = HTTPClient.Configuration()
        settings.tlsConfiguration = .makeClientConfiguration()   // system trust store
        if let caFile = c.caFile, !caFile.isEmpty {
            guard let pem = FileManager.default.contents(atPath: caFile),
                  String(decoding: pem, as: UTF8.self).contains("-----BEGIN CERTIFICATE-----") else {
                throw OdooConfigurationError.caFileUnreadable(caFile)
            }
            settings.tlsConfiguration?.additionalTrustRoots = [.file(caFile)]
        }
        settings.redirectConfiguration = .disallow
        settings.timeout = .init(connect: .milliseconds(Int64(c.connectTimeout * 1000)),
                                 read: .milliseconds(Int64(c.requestTimeout * 1000)))
        settings.connectionPool = .init(idleTimeout: .seconds(60),
                                        concurrentHTTP1ConnectionsPerHostSoftLimit: c.maxConcurrentRequests)
        self.configuration = c
        self.url = c.usageLogURL
        self.limiter = AsyncLimiter(limit: c.maxConcurrentRequests)
        self.http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: settings)
    }

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
        try await http.shutdown()
    }

    private func perform(_ body: [UInt8]) async -> UsageOutcome {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Accept", value: "application/json")
        request.headers.add(name: "Authorization", value: "bearer \(configuration.apiKey)")
        if let db = configuration.database, !db.isEmpty {
            request.headers.add(name: "X-Odoo-Database", value: db)
        }
        request.body = .bytes(body)
        do {
            let response = try await http.execute(
                request, timeout: .milliseconds(Int64(configuration.requestTimeout * 1000)))
            var bytes: [UInt8] = []
            for try await chunk in response.body {
                if bytes.count + chunk.readableBytes > Self.maxResponseBytes {
                    return .transient(reason: "response body larger than \(Self.maxResponseBytes) bytes",
                                      retryAfter: nil)
                }
                bytes.append(contentsOf: chunk.readableBytesView)
            }
            let headers = response.headers.map { ($0.name, $0.value) }
            return OdooResponseClassifier.classify(status: Int(response.status.code), headers: headers, body: bytes)
        } catch {
            if Task.isCancelled { return .transient(reason: "cancelled", retryAfter: nil) }
            return .transient(reason: Self.describe(error), retryAfter: nil)
        }
    }

    /// A short transport-failure description (never containing request headers).
    static func describe(_ error: any Error) -> String {
        if let e = error as? HTTPClientError {
            switch e {
            case .connectTimeout: return "connect timeout"
            case .deadlineExceeded, .readTimeout: return "timed out"
            case .remoteConnectionClosed: return "connection closed by Odoo before an answer"
            case .cancelled: return "cancelled"
            default: return "HTTP client error: \(e)"
            }
        }
        return "transport error: \(String(describing: error).prefix(300))"
    }

    /// Belt and braces: no outcome text ever carries the API key, whatever a server echoes.
    private func redacted(_ outcome: UsageOutcome) -> UsageOutcome {
        let key = configuration.apiKey
        func clean(_ s: String) -> String { key.isEmpty ? s : s.replacingOccurrences(of: key, with: "<redacted>") }
        switch outcome {
        case .recorded, .duplicate: return outcome
        case .rejected(let name, let message): return .rejected(errorName: clean(name), message: clean(message))
        case .credentials(let reason): return .credentials(reason: clean(reason))
        case .transient(let reason, let retryAfter): return .transient(reason: clean(reason), retryAfter: retryAfter)
        }
    }
}
