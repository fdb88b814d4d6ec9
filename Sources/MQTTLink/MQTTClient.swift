// The public face of the MQTT adapter: one broker connection (to one of several addresses) that reconnects forever.

/// One MQTT connection to a broker (or, in turn, to the nodes of a cluster), kept up by its own network thread.
///
/// - `start()` returns at once; the network thread connects, and after every loss (moving to the next
///   of `configuration.brokerAddresses`)
///   reconnects forever with exponential backoff (`reconnectDelayMin`…`reconnectDelayMax`).
/// - `connectionEvents` and `messages` are each meant for a single consumer (an
///   `AsyncStream` hands every element to one iterator). `connectionEvents` keeps the
///   newest 256 undelivered events; `messages` buffers up to `maxQueuedBytes` of payload
///   (QoS 1 messages are acknowledged to the broker on receipt, so a message that does not
///   fit is delivered without its payload, `discarded`, rather than dropped).
/// - This module never logs: it reports through `connectionEvents` and thrown errors,
///   neither of which ever contains the password.
public final class MQTTClient: Sendable {
    let core: ClientCore

    /// Validates `configuration` and prepares the libmosquitto handle (protocol version,
    /// in-flight window, credentials, will, TLS). Does not touch the network.
    public init(configuration: MQTTConfiguration) throws {
        core = try ClientCore(configuration: configuration)
    }

    /// As above, with birth/death session numbering: `sessions.nextSession` gives the number of every
    /// connection attempt, `sessions.will` its will (replacing `configuration.will`). See `MQTTSessionHooks`.
    public init(configuration: MQTTConfiguration, sessions: MQTTSessionHooks) throws {
        core = try ClientCore(configuration: configuration, sessions: sessions)
    }

    deinit {
        core.stop()
    }

    public var configuration: MQTTConfiguration { core.configuration }

    /// Link state changes, in order. Finishes after `stop()`.
    public var connectionEvents: AsyncStream<MQTTConnectionEvent> { core.events }

    /// Messages for this client's subscriptions (and, with a persistent session, those the
    /// broker queued while it was offline). Finishes after `stop()`, and for an iterating
    /// task that is cancelled.
    public var messages: AsyncStream<MQTTMessage> { core.messages }

    /// The protocol the current (or next) connection speaks: `.v5` or `.v311` (an `.auto` client
    /// says `.v311` after the broker refused MQTT 5).
    public var protocolInUse: MQTTProtocolVersion { core.protocolInUse }

    /// Test hook: payload bytes waiting for the consumer of `messages`.
    var queuedBytes: Int { core.queue.queuedBytes }

    /// True between a successful CONNACK and the loss of that link.
    public var isConnected: Bool { core.isConnected }

    /// The session number of the current connection (while offline: of the last one; nil before the first
    /// CONNACK). Raised at every connection attempt (`MQTTSessionHooks.nextSession`, or 1, 2, … without hooks);
    /// the will of that connection carried it.
    public var session: UInt64? { core.session }

    /// The broker address (cluster node) of the current connection (while offline: of the last one).
    public var broker: MQTTBrokerAddress? { core.broker }

    /// Whether the link is up, with its session number and address, read at one instant.
    public var link: (connected: Bool, session: UInt64?, broker: MQTTBrokerAddress?) { core.link }

    /// Test hook: publishes waiting for their acknowledgement.
    var pendingPublishCount: Int { core.pendingPublishCount }

    /// Test hook: runs between handing a publish to the library and waiting for its ack.
    func setAfterHandOffHook(_ hook: (@Sendable () -> Void)?) { core.afterHandOffHook.withLock { $0 = hook } }

    /// Test hook: whether the broker acknowledged `filter` within the current session.
    func isSubscriptionAcknowledged(_ filter: String) -> Bool { core.isSubscriptionAcknowledged(filter) }

    /// Starts the network thread. Never blocks. A second call does nothing; after `stop()`
    /// it throws `.shutdown`.
    public func start() throws {
        try core.start()
    }

    /// Subscribes now if connected, and remembers the subscription: it is sent again after
    /// every connect whose session is not present (or whose SUBACK never came).
    /// `retainAsPublished` (MQTT 5 only; ignored by libmosquitto with 3.1.1) asks the broker to keep
    /// the retain flag of messages published while subscribed, so the consumer can refuse them.
    public func subscribe(_ filter: String, qos: Int, retainAsPublished: Bool = false) throws {
        try core.subscribe(filter, qos: qos, retainAsPublished: retainAsPublished)
    }

    /// QoS 0: returns once handed to the library. QoS 1/2: returns after the broker's PUBACK/PUBCOMP.
    /// Throws .notConnected if not connected when called, .connectionLost if the link drops before the ack
    /// (the caller — a durable event log — will re-publish from its own store after reconnect).
    /// Also throws `.shutdown` after `stop()`, `CancellationError` if the task is cancelled
    /// while waiting, and `.library` if an MQTT 5 broker answers with a failure reason code.
    /// `properties` are sent with MQTT 5 only.
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool,
                        properties: MQTTPublishProperties? = nil) async throws {
        try await core.publish(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
    }

    /// Sends DISCONNECT (so the will is not published), stops the network thread and
    /// destroys the handle. Idempotent. Fails pending publishes with `.shutdown` and
    /// finishes both streams. Waits at most a few seconds for the network thread.
    public func stop() {
        core.stop()
    }
}
