#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Prometheus text (`GET /metrics`) and health (`GET /health`) over HTTP/1.1, bound to a loopback address
/// only (the configuration refuses others). Health is 200 while the station can decide swaps (at least one
/// cabinet online, store writable; `degraded` when a cabinet is not) and 503 otherwise, with the reasons as
/// JSON; a broker outage is not unhealthy: the station keeps swapping offline.
public final class MetricsServer: Service, Sendable {
    let host: String
    let port: Int
    let handler: ControlHandler
    let logger: Logger

    public init(host: String, port: Int, handler: ControlHandler, logger: Logger) {
        self.host = host; self.port = port; self.handler = handler; self.logger = logger
    }

    public func run() async throws {
        let server: NIOAsyncChannel<NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>, Never>
        do {
            server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(.backlog, value: 16)
                .bind(host: host, port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandlers(LocalConnectionGuard.handlers(budget: .metrics))
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(wrappingChannelSynchronously: channel)
                    }
                }
        } catch {
            // Metrics are not worth stopping the station for: log and keep running without them.
            logger.error("cannot serve metrics; continuing without them", metadata: ["address": "\(host):\(port)", "error": "\(error)"])
            try? await gracefulShutdown()
            return
        }
        logger.info("metrics and health listening", metadata: ["address": "http://\(host):\(port)/metrics"])
        try await acceptUntilShutdown(server, executor: .metrics) { await self.serve($0) }
    }

    private func serve(_ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var head: HTTPRequestHead?
                for try await part in inbound {
                    switch part {
                    case let .head(h): head = h
                    case .body: break
                    case .end:
                        guard let h = head else { continue }
                        let (status, type, body) = await answer(h)
                        var headers = HTTPHeaders()
                        headers.add(name: "Content-Type", value: type)
                        headers.add(name: "Content-Length", value: String(body.utf8.count))
                        headers.add(name: "Connection", value: h.isKeepAlive ? "keep-alive" : "close")
                        try await outbound.write(.head(HTTPResponseHead(version: h.version, status: status, headers: headers)))
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: body))))
                        try await outbound.write(.end(nil))
                        if !h.isKeepAlive { return }
                        head = nil
                    }
                }
            }
        } catch {
            logger.debug("metrics connection ended", metadata: ["error": "\(error)"])
        }
    }

    func answer(_ head: HTTPRequestHead) async -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, "text/plain", "GET only\n") }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/metrics":
            do { return (.ok, "text/plain; version=0.0.4; charset=utf-8", try await handler.metricsText()) } catch {
                return (.internalServerError, "text/plain", "metrics unavailable: \(error)\n")
            }
        case "/health", "/healthz":
            let report = await handler.health()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = String(decoding: (try? encoder.encode(report)) ?? Data(), as: UTF8.self) + "\n"
            return (report.healthy ? .ok : .serviceUnavailable, "application/json", body)
        default:
            return (.notFound, "text/plain", "try /metrics or /health\n")
        }
    }
}

public struct HealthReport: Codable, Sendable {
    /// True while the station can decide and record swaps: the store answers and at least one cabinet is online.
    /// HTTP 200 when true (`status` healthy or degraded), 503 when false.
    public var healthy: Bool
    /// Why it is unhealthy.
    public var problems: [String]
    /// Every cabinet answers (online or in safe mode).
    public var cabinetUp: Bool
    public var brokerConnected: Bool
    public var storeOK: Bool
    /// The Odoo link (`up`, `down`, `alarm`, `unknown`, `not_configured`). Never makes the station unhealthy:
    /// swaps do not need Odoo (usage records wait in the outbox).
    public var odoo: String? = nil
    /// Problems that do not stop swaps: a cabinet not serving while another one is (`cabinet B not answering
    /// (slots 5…8 out of swaps)`), `odoo: credentials: …` (usage cannot be billed until fixed).
    public var warnings: [String] = []
    /// `healthy`, `degraded` (healthy, with warnings) or `unhealthy`.
    public var status: String = "healthy"
    /// Every cabinet in configured order with its link state (as in `swapctl status` and the MQTT status).
    public var cabinets: [CabinetHealth] = []
}

/// One cabinet in `/health`.
public struct CabinetHealth: Codable, Sendable {
    public var id: String
    /// `online`, `unreachable`, `safe_mode` or `unknown` (CabinetLinkState).
    public var state: String
    /// Its station slots ("5…8"), nil while its slot count is unknown.
    public var slots: String?
    public var lastError: String?
}

extension ControlHandler {
    /// Healthy = the station can decide and record swaps: the store answers and at least one cabinet is online
    /// (answering, not in safe mode). A cabinet that is not, while another is, is a warning: `degraded`, still 200.
    public func health() async -> HealthReport {
        var problems: [String] = []
        var warnings: [String] = []
        let reports = CabinetReports.of(acquisition)
        let serving = reports.filter { $0.state == .online }
        for r in reports where r.state != .online {
            let name = reports.count > 1 ? "cabinet \(r.id)" : "cabinet"
            let what = r.state == .safeMode ? "\(name) in safe mode"
                : r.state == .unknown && r.statistics.cycles == 0 ? "\(name) not polled yet" : "\(name) not answering"
            if serving.isEmpty { problems.append(what) } else { warnings.append("\(what) (slots \(r.slotRange ?? "?") out of swaps)") }
        }
        var storeOK = true
        do { _ = try await store.stats() } catch { storeOK = false; problems.append("store: \(error)") }
        if let e = health.state.storeError { storeOK = false; problems.append("store: \(e)") }
        let odoo = await odooStatus()
        if odoo.state == .alarm { warnings.append("odoo: \(odoo.reason ?? "credentials refused")") }
        var report = HealthReport(healthy: problems.isEmpty, problems: problems,
                                  cabinetUp: reports.allSatisfy { $0.state == .online || $0.state == .safeMode },
                                  brokerConnected: mqtt.isConnected, storeOK: storeOK, odoo: odoo.state.rawValue, warnings: warnings)
        report.status = !problems.isEmpty ? "unhealthy" : warnings.isEmpty ? "healthy" : "degraded"
        report.cabinets = reports.map {
            CabinetHealth(id: $0.id, state: $0.state.rawValue, slots: $0.slotRange, lastError: $0.state == .online ? nil : $0.statistics.lastError)
        }
        return report
    }
}
