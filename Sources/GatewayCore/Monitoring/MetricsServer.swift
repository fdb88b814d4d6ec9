import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// Prometheus text (`GET /metrics`) and health (`GET /health`) over HTTP/1.1, bound to a loopback address
/// only (the configuration refuses others). Health is 200 while the station can decide swaps (cabinet
/// answering, store writable) and 503 otherwise, with the reasons as JSON; a broker outage is not
/// unhealthy: the station keeps swapping offline.
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
    public var healthy: Bool
    public var problems: [String]
    public var cabinetUp: Bool
    public var brokerConnected: Bool
    public var storeOK: Bool
    /// The Odoo link (`up`, `down`, `alarm`, `unknown`, `not_configured`). Never makes the station unhealthy:
    /// swaps do not need Odoo (usage records wait in the outbox).
    public var odoo: String? = nil
    /// Problems that do not stop swaps, e.g. `odoo: credentials: …` (usage cannot be billed until fixed).
    public var warnings: [String] = []
}

extension ControlHandler {
    /// Healthy = the station can decide and record swaps: the cabinet answers and the store answers.
    public func health() async -> HealthReport {
        var problems: [String] = []
        let snap = acquisition.snapshot
        let cabinetUp = !snap.cabinetStale && snap.cabinet != nil
        if !cabinetUp { problems.append("cabinet not answering") }
        var storeOK = true
        do { _ = try await store.stats() } catch { storeOK = false; problems.append("store: \(error)") }
        if let e = health.state.storeError { storeOK = false; problems.append("store: \(e)") }
        if snap.cabinet?.safeMode == true { problems.append("cabinet in safe mode") }
        let odoo = await odooStatus()
        var warnings: [String] = []
        if odoo.state == .alarm { warnings.append("odoo: \(odoo.reason ?? "credentials refused")") }
        return HealthReport(healthy: problems.isEmpty, problems: problems, cabinetUp: cabinetUp,
                            brokerConnected: mqtt.isConnected, storeOK: storeOK, odoo: odoo.state.rawValue, warnings: warnings)
    }
}
