import ABSProtocol
import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import MQTTLink
import OdooLink
import ServiceLifecycle
import StationDomain
import StationStore

public enum GatewayVersion {
    public static let string = "0.3.0"
    /// A wall clock earlier than this is wrong (contract 1.1 "Time"): SwiftPM has no compile-time timestamp, so this
    /// is set by hand at release (tools/release.sh prints it; docs/operator.md "Clock"). 2026-11-01T00:00:00Z.
    public static let buildEpoch = Date(timeIntervalSince1970: 1_793_491_200)
}

/// Builds the daemon from a configuration: the store, the acquisition, MQTT and the services that tie
/// them together, in one ServiceGroup that owns start-up order and graceful shutdown (SIGTERM/SIGINT).
///
/// Start order (shutdown runs it backwards): MQTT, station publisher, event publisher, event recorder,
/// maintenance, [Odoo forwarder], acquisition, swaps, [metrics], [control API], systemd notifier, commands. So at shutdown
/// commands stop first (no new swap), running swaps are driven until just before the acquisition stops, the recorder drains what it saw,
/// the publisher sends what it can, the offline status goes out, and MQTT disconnects last.
public final class Gateway: Sendable {
    public let configuration: GatewayConfiguration
    public let store: StationStore
    public let acquisition: StationAcquisition
    public let mqtt: MQTTClient
    public let mqttService: MQTTService
    public let recorder: EventRecorder
    public let eventPublisher: EventPublisher
    public let stationPublisher: StationPublisher
    public let coordinator: SwapCoordinator
    public let commands: CommandService
    public let forwarder: UsageForwarder?
    public let metrics = GatewayMetrics()
    public let health = GatewayHealth()
    public let topics: Topics
    public let control: ControlHandler
    public let controlServer: ControlServer?
    public let metricsServer: MetricsServer?
    public let clock: TrustedClock
    let configDigest: String
    let logger: Logger

    public init(configuration c: GatewayConfiguration, configText: String, configPath: String? = nil, logger: Logger) async throws {
        self.configuration = c
        self.logger = logger
        self.topics = Topics(stationID: c.station.id)
        self.configDigest = lowercaseHex(OpenSSLDigest.sha256(configText.utf8))

        try FileManager.default.createDirectory(atPath: parentDirectory(c.store.path),
                                                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        store = try StationStore(path: c.store.path)
        var seed: PersistedStation?
        if let json = try await store.meta(PersistedStation.metaKey) {
            seed = try? JSONDecoder().decode(PersistedStation.self, from: Data(json.utf8))
        }
        // Trusted time (contract 1.1 "Time"): the clock, or the signed time base restored from the store.
        let useKernelFlag = c.clock.kernelFlag
        let kernelSaysSynchronised: @Sendable () -> Bool = { useKernelFlag ? TrustedClock.kernelSaysSynchronised() : true }
        let trustedClock = TrustedClock(trust: TrustedClock.Trust(rawValue: c.clock.trust) ?? .auto, maxSkew: c.abs.maxClockSkew,
                                        syncFlagPath: c.clock.syncFlag,
                                        kernelSynchronised: kernelSaysSynchronised)
        await trustedClock.restore(from: store)
        ClockTrustMark.install(trustedClock)
        CabinetClockSource.install { trustedClock.trustedNow() }
        self.clock = trustedClock
        acquisition = StationAcquisition(configurations: c.acquisitions, seed: seed,
                                         logger: Self.child(logger, "acquisition"))

        // mqtt.hosts: the nodes of a broker cluster, tried in turn (docs/mqtt-adapter.md "Several brokers").
        var m = MQTTConfiguration(addresses: c.mqttAddresses.map { MQTTBrokerAddress(host: $0.host, port: $0.port) }, clientID: c.mqttClientID)
        m.cleanSession = false
        m.keepAliveSeconds = c.mqtt.keepAlive
        m.protocolVersion = c.mqtt.protocolVersion == "5" ? .v5 : c.mqtt.protocolVersion == "3.1.1" ? .v311 : .auto
        // Memory bounds (docs/mqtt-adapter.md): the broker sends nothing above max_packet_size (MQTT 5); commands
        // other than entitlements are small; what waits for the command service is bounded in bytes.
        m.maximumPacketSize = c.mqtt.maxPacketSize
        m.payloadLimits = [MQTTPayloadLimit(filter: topics.command("entitlements"), maxBytes: c.mqtt.maxPacketSize),
                           MQTTPayloadLimit(filter: topics.commands, maxBytes: c.mqtt.maxCommandBytes)]
        m.maxQueuedBytes = c.mqtt.maxQueuedBytes
        m.username = c.mqtt.username
        m.password = c.mqtt.password
        if c.mqtt.caFile != nil || c.mqtt.certFile != nil {
            m.tls = MQTTTLSConfiguration(caFile: c.mqtt.caFile, certFile: c.mqtt.certFile, keyFile: c.mqtt.keyFile,
                                         insecureSkipVerify: c.mqtt.tlsInsecure)
        }
        m.maxInflight = c.mqtt.maxInflight
        m.reconnectDelayMin = c.mqtt.reconnectDelayMin
        m.reconnectDelayMax = c.mqtt.reconnectDelayMax
        // Birth/death sessions (contract 1.1): a number kept in the store's meta, raised before every CONNECT; the
        // will registered for that connection carries it (so does the birth StationPublisher sends on connect).
        let sessionCounter = try await MQTTSessionCounter(store: store, logger: Self.child(logger, "mqtt"))
        let (stationID, statusTopic) = (c.station.id, topics.status)
        mqtt = try MQTTClient(configuration: m, sessions: MQTTSessionHooks(nextSession: { try sessionCounter.next() }, will: { n in
            MQTTWill(topic: statusTopic, payload: StationPublisher.willPayload(stationID: stationID, version: GatewayVersion.string, session: n),
                     qos: 1, retain: true)
        }))
        mqttService = MQTTService(client: mqtt, health: health, logger: Self.child(logger, "mqtt"),
                                  meter: metrics.traffic, keepAlive: c.mqtt.keepAlive)

        let wake = Wakeup()
        recorder = EventRecorder(store: store, changes: acquisition.broadcast.subscribe(), wake: wake, health: health,
                                 logger: Self.child(logger, "events"))
        eventPublisher = EventPublisher(store: store, mqtt: mqtt, topics: topics, window: c.publishing.publishWindow,
                                        wake: wake, health: health, logger: Self.child(logger, "publisher"), meter: metrics.traffic,
                                        pacer: BacklogPacer(rate: c.publishing.backlogRate), gauge: metrics.backlog)
        stationPublisher = StationPublisher(mqtt: mqtt, connection: mqttService, acquisition: acquisition, topics: topics,
                                            version: GatewayVersion.string, telemetryInterval: c.publishing.telemetryInterval,
                                            inventoryDebounce: c.publishing.inventoryDebounce, logger: Self.child(logger, "station"),
                                            telemetryFullInterval: c.publishing.telemetryFullInterval,
                                            telemetry: TelemetryReporter(mode: TelemetryReporter.Mode(rawValue: c.publishing.telemetryMode) ?? .changes,
                                                                         deadbands: c.publishing.deadbands, compactKeys: c.publishing.compactKeys),
                                            meter: metrics.traffic,
                                            governor: c.publishing.monthlyBudgetMB.map { TelemetryGovernor(budgetBytes: $0 * 1e6, maxFactor: c.publishing.budgetMaxFactor) },
                                            budgetCheckInterval: c.publishing.budgetCheckInterval, budgetGauge: metrics.budget)

        var settings = SwapCoordinator.Settings(stationID: c.station.id, networkCode: c.station.networkCode, outletCode: c.station.outletCode)
        settings.timeouts = SwapTimeouts(returnTimeout: c.swaps.returnTimeout, pickupTimeout: c.swaps.pickupTimeout)
        settings.cachePolicy = CachePolicy(maxStaleness: c.swaps.maxCacheStalenessHours * 3600, allowStale: c.swaps.allowStaleCache)
        settings.maxConcurrentSwaps = c.swaps.maxConcurrent
        settings.swapCountService = c.odoo.swapCountService
        settings.energyService = c.odoo.energyService
        settings.now = { trustedClock.now() }
        let client = mqtt
        coordinator = SwapCoordinator(store: store, acquisition: acquisition, settings: settings, metrics: metrics, wake: wake,
                                      logger: Self.child(logger, "swaps"), isOnline: { client.isConnected })
        var policy = CommandPolicy()
        policy.allowUnsigned = c.abs.allowUnsigned
        policy.maxClockSkew = c.abs.maxClockSkew
        policy.maxInflatedBytes = c.abs.maxInflatedBytes
        policy.stationID = c.station.id   // a command naming another station is refused
        let verifier = CommandVerifier(keys: try KeyRing(keys: c.abs.publicKeys), policy: policy)
        if !c.odoo.baseURL.isEmpty, let key = c.odoo.apiKey {
            var o = OdooConfiguration(baseURL: c.odoo.baseURL, apiKey: key)
            o.database = c.odoo.database.isEmpty ? nil : c.odoo.database
            o.requestTimeout = c.odoo.requestTimeout
            o.caFile = c.odoo.caFile
            o.maxConcurrentRequests = c.odoo.maxInFlight
            forwarder = UsageForwarder(store: store, client: try OdooClient(configuration: o), maxInFlight: c.odoo.maxInFlight,
                                       backoff: Backoff(base: c.odoo.backoffBase, cap: c.odoo.backoffCap, credentialsDelay: c.odoo.credentialsDelay),
                                       recorder: recorder, health: health, metrics: metrics, logger: Self.child(logger, "odoo"))
        } else {
            forwarder = nil
        }
        // One home per station operation (UseCases/StationOperations.swift): both adapters below map its typed results.
        let operations = StationOperations(cabinet: acquisition, ledger: store, swaps: coordinator, events: recorder, clock: trustedClock,
                                           logger: Self.child(logger, "operations"))
        commands = CommandService(mqtt: mqtt, topics: topics, verifier: verifier, store: store, coordinator: coordinator,
                                  acquisition: acquisition, recorder: recorder, metrics: metrics, version: GatewayVersion.string,
                                  maxQueuedBytes: c.mqtt.maxQueuedBytes,
                                  logger: Self.child(logger, "commands"), rebirth: { [stationPublisher] in await stationPublisher.rebirth() },
                                  clock: trustedClock, operations: operations)
        control = ControlHandler(configuration: c, configPath: configPath, configText: configText, configDigest: configDigest,
                                 store: store, acquisition: acquisition, coordinator: coordinator, recorder: recorder, mqtt: mqtt,
                                 health: health, metrics: metrics, odooConfigured: forwarder != nil, logger: Self.child(logger, "control"),
                                 operations: operations)
        controlServer = c.control.socket.isEmpty ? nil : ControlServer(path: c.control.socket, handler: control, logger: Self.child(logger, "control"))
        metricsServer = c.metrics.enabled ? MetricsServer(host: c.metrics.host, port: c.metrics.port, handler: control,
                                                          logger: Self.child(logger, "metrics")) : nil
    }

    /// Runs until SIGTERM/SIGINT (or a fatal service error), then shuts down in order.
    public func run() async throws {
        let previousClean = try await store.meta("clean_shutdown").map { $0 == "true" } ?? true
        try await store.setMeta("clean_shutdown", "false")
        if !previousClean { logger.warning("previous run did not shut down cleanly (crash or power loss)") }
        if let board = ProcessInfo.processInfo.environment[TrustedClock.testBoardClockVariable], !board.isEmpty {
            logger.warning("TEST ONLY: the board clock is simulated (\(TrustedClock.testBoardClockVariable))", metadata: ["board_clock": "\(board)"])
        }
        if let why = clock.distrust {
            logger.warning("the clock is not trusted: commands are judged against the signed time base",
                           metadata: ["why": "\(why)", "base": "\(clock.baseNow.map { RFC3339.format($0) } ?? "none yet")"])
        }
        if configuration.abs.allowUnsigned {
            logger.warning("abs.allow_unsigned is on: UNSIGNED COMMANDS ARE ACCEPTED (development only)")
        }
        await recorder.record([ContractEvent(.gatewayStarted(version: GatewayVersion.string, configDigest: configDigest,
                                                             previousShutdownClean: previousClean))])
        // A snapshot in parts whose last part was staged when the daemon died, before or during its swap-in: in now.
        do {
            if let r = try await store.swapInCompleteStagedSnapshot() {
                await recorder.record([ContractEvent(.entitlementsApplied(kind: "snapshot", version: r.version, count: r.count,
                                                                        snapshotID: r.snapshotID, parts: r.parts))])
                logger.notice("entitlement snapshot in parts, complete at the last stop, swapped in at start",
                              metadata: ["snapshot_id": "\(r.snapshotID)", "parts": "\(r.parts)", "version": "\(r.version)", "count": "\(r.count)"])
            }
        } catch { logger.error("a complete staged entitlement snapshot could not be swapped in", metadata: ["error": "\(error)"]) }
        logger.notice("swapgate starting", metadata: [
            "station": "\(configuration.station.id)", "cabinets": "\(configuration.cabinets.map { "\($0.id)@\(GatewayConfiguration.busKey($0))#\($0.unit)" }.joined(separator: " "))",
            "broker": "\(configuration.mqttAddresses.map(\.description).joined(separator: " "))", "store": "\(configuration.store.path)",
            "version": "\(GatewayVersion.string)",
        ])

        let maintenance = MaintenanceService(store: store, policy: RetentionPolicy(keepSentDays: configuration.store.keepSentDays,
                                                                                 maxSentRows: configuration.store.maxSentRows),
                                             records: RecordRetention(keepSettledUsageDays: configuration.store.keepSettledDays,
                                                                      keepFinishedSwapDays: configuration.store.keepSettledDays,
                                                                      keepAuditDays: configuration.store.keepAuditDays),
                                             logger: Self.child(logger, "maintenance"))
        // Commands last: at shutdown they stop first (no new swap while the rest winds down).
        if forwarder == nil { logger.warning("odoo.base_url is not set: usage records are kept in the outbox, not sent") }
        let systemd = SystemdService(notifier: SystemdNotifier(), ready: controlServer?.listening, store: store,
                                     acquisition: acquisition, logger: Self.child(logger, "systemd"))
        // The local API and metrics come up after the acquisition (they read it) and go down before it.
        var services: [any Service] = [mqttService, stationPublisher, eventPublisher, recorder, maintenance]
        if let forwarder { services.append(forwarder) }
        services.append(AcquisitionService(acquisition: acquisition))
        // Swaps after the acquisition (they react to its changes) and before the adapters that request them.
        services.append(SwapService(coordinator: coordinator, acquisition: acquisition, logger: Self.child(logger, "swaps")))
        if let metricsServer { services.append(metricsServer) }
        if let controlServer { services.append(controlServer) }
        services += [systemd, commands]
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: Self.child(logger, "lifecycle")))
        do {
            try await group.run()
        } catch {
            logger.critical("service group failed", metadata: ["error": "\(error)"])
            throw error
        }
        try await store.setMeta("clean_shutdown", "true")
        try await store.close()
        logger.notice("swapgate stopped cleanly")
    }

    static func child(_ logger: Logger, _ label: String) -> Logger {
        var l = logger
        l[metadataKey: "part"] = "\(label)"
        return l
    }
}

/// Periodic upkeep of the store: retention of sent events (never an unsent one) and WAL checkpoints.
public struct MaintenanceService: Service {
    let store: StationStore
    let policy: RetentionPolicy
    let records: RecordRetention
    let logger: Logger
    var interval: Double = 600

    public func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let deleted = try await store.applyRetention(policy, now: Date())
                    if deleted > 0 { logger.info("retention removed sent events", metadata: ["rows": "\(deleted)"]) }
                    let old = try await store.applyRecordRetention(records, now: Date())
                    if old > 0 { logger.info("retention removed settled usage, finished swaps and old audit lines", metadata: ["rows": "\(old)"]) }
                    try await store.checkpoint()
                } catch {
                    logger.warning("store maintenance failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: .seconds(interval))
            }
        }
    }
}
