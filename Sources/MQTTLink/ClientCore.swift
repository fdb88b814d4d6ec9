// The part of MQTTLink that touches libmosquitto. See docs/mqtt-adapter.md for the design.
//
// Threads:
// - the network thread (ours, one per client) owns the mosquitto handle: it connects
//   (blocking), runs mosquitto_loop, sleeps the reconnect backoff, and finally destroys the
//   handle. All libmosquitto callbacks run on it.
// - caller threads (tasks calling publish/subscribe/stop) make short, non-blocking library
//   calls (publish, subscribe, disconnect) while holding `gate`, which the network thread
//   checks before it destroys the handle.
//
// Locks: `state` is never held across a library call, so a callback (which holds the
// library's callback mutex and then takes `state`) can never deadlock with a caller.
// `gate` is held across library calls but is never taken by a callback.
import CMosquitto
import Dispatch
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// mosquitto_lib_init(), once per process: a global's initialiser runs exactly once,
/// thread-safely. mosquitto_lib_cleanup() is never called (the process owns the library
/// until it exits).
private let libraryInitResult: Int32 = mosquitto_lib_init()

final class ClientCore: Sendable {
    let configuration: MQTTConfiguration

    /// The libmosquitto handle. `nonisolated(unsafe)` because OpaquePointer is not Sendable;
    /// it is safe because (1) the pointer itself never changes after init, (2) libmosquitto
    /// guards its own state with internal mutexes for the calls made from several threads
    /// (publish, subscribe, disconnect; mosquitto_threaded_set(true) tells it we do that),
    /// (3) mosquitto_loop/connect are only called by the network thread, and
    /// (4) mosquitto_destroy runs once, after `gate` was closed (no caller can be inside a
    /// library call any more) and, when the network thread ran, by that thread at its end.
    nonisolated(unsafe) let handle: OpaquePointer

    /// `true` while caller threads may use `handle`. Held across their (non-blocking)
    /// library calls; never taken by libmosquitto callbacks.
    private let gate = Mutex<Bool>(true)
    private let state = Mutex(State())
    private let stopRequested = Atomic<Bool>(false)
    /// Wakes the network thread out of its backoff sleep when stop() is called.
    private let wake = DispatchSemaphore(value: 0)
    /// Signalled by the network thread after it destroyed the handle.
    private let exited = DispatchSemaphore(value: 0)

    let events: AsyncStream<MQTTConnectionEvent>
    private let eventSink: AsyncStream<MQTTConnectionEvent>.Continuation
    /// Received messages, bounded by payload bytes (`maxQueuedBytes`).
    let queue: MessageQueue
    /// Set by the message callback when it saw a large packet: the network thread then gives the
    /// heap's free pages back (malloc_trim) once libmosquitto has freed the packet.
    private let sawLargePacket = Atomic<Bool>(false)
    static let largePacketBytes = 1 << 20

    /// How long stop() waits for the network thread to send DISCONNECT and exit.
    static let stopWaitSeconds = 5

    /// Session numbering and the per-connection will (nil: numbers from 1 in this process, static will).
    let sessionHooks: MQTTSessionHooks?
    /// The addresses tried in turn (`configuration.brokerAddresses`).
    let addresses: [MQTTBrokerAddress]

    init(configuration: MQTTConfiguration, sessions: MQTTSessionHooks? = nil) throws {
        try Self.validate(configuration)
        precondition(libraryInitResult == CMOSQ_ERR_SUCCESS, "mosquitto_lib_init failed")
        guard let handle = configuration.clientID.withCString({
            mosquitto_new($0, configuration.cleanSession, nil)
        }) else {
            let err = cmosquitto_errno()
            throw MQTTError.library(code: Int32(err == ENOMEM ? CMOSQ_ERR_NOMEM : CMOSQ_ERR_INVAL),
                                    message: "mosquitto_new failed: \(String(cString: strerror(err)))")
        }
        self.configuration = configuration
        self.sessionHooks = sessions
        self.addresses = configuration.brokerAddresses
        self.handle = handle
        (events, eventSink) = AsyncStream.makeStream(of: MQTTConnectionEvent.self,
                                                     bufferingPolicy: .bufferingNewest(256))
        queue = MessageQueue(limit: configuration.maxQueuedBytes)
        protocolState = Mutex(configuration.protocolVersion == .v311 ? .v311 : .v5)
        do {
            try configureHandle()
        } catch {
            mosquitto_destroy(handle)
            eventSink.finish()
            queue.finish()
            throw error
        }
        // The handle's userdata owns one reference to this core; released right after
        // mosquitto_destroy (see destroyHandle).
        mosquitto_user_data_set(handle, Unmanaged.passRetained(self).toOpaque())
    }

    // MARK: - State

    private struct Pending {
        var ticket: UInt64
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct EarlyAck {
        var reasonCode: Int32
        /// The newest publish ticket issued when the ack arrived: only a publisher whose
        /// ticket is ≤ this can own it (older acks are stale re-sends, see publish()).
        var ticketBound: UInt64
    }

    private struct Subscription {
        var qos: Int32
        /// MQTT 5 subscription options (Retain As Published); libmosquitto drops them with 3.1.1.
        var options: Int32
        /// SUBACK seen within the current broker session.
        var acknowledged: Bool
    }

    private struct State {
        var started = false
        var stopped = false
        var connected = false
        /// Increments every time an established link is lost.
        var linkEpoch: UInt64 = 0
        /// Whether the current connection attempt already produced its event.
        var attemptReported = false
        var connackThisAttempt = false
        /// The session number and address of the attempt in progress (set before CONNECT).
        var attemptSession: UInt64 = 0
        var attemptAddress: MQTTBrokerAddress?
        /// Those of the current (or, when offline, the last) connection that reached CONNACK.
        var session: UInt64?
        var broker: MQTTBrokerAddress?
        /// Session numbers when no `MQTTSessionHooks` are given.
        var localSessionCounter: UInt64 = 0

        var nextTicket: UInt64 = 1
        /// Publishers between "ticket issued" and "registered or finished".
        var inProgress: Set<UInt64> = []
        var cancelledTickets: Set<UInt64> = []
        var pending: [Int32: Pending] = [:]
        var ticketMids: [UInt64: Int32] = [:]
        var earlyAcks: [Int32: EarlyAck] = [:]

        var subscriptions: [String: Subscription] = [:]
        var subscribeMids: [Int32: [String]] = [:]
        /// Callers between their mosquitto_subscribe and recording its mid, and the SUBACKs
        /// that overtook them (same race as for PUBACKs, see publish()).
        var subscribesInProgress = 0
        var earlySubacks: [Int32: [Int32]] = [:]

        mutating func applySuback(filters: [String], granted: [Int32]) {
            for (i, filter) in filters.enumerated() where i < granted.count && granted[i] < 0x80 {
                subscriptions[filter]?.acknowledged = true
            }
        }

        mutating func finishTicket(_ ticket: UInt64) {
            inProgress.remove(ticket)
            cancelledTickets.remove(ticket)
            purgeEarlyAcks()
        }

        /// Drops early acks that no in-progress publisher can own any more.
        mutating func purgeEarlyAcks() {
            guard !earlyAcks.isEmpty else { return }
            guard let oldest = inProgress.min() else { earlyAcks.removeAll(); return }
            earlyAcks = earlyAcks.filter { $0.value.ticketBound >= oldest }
        }

        mutating func takeAllPending() -> [CheckedContinuation<Void, any Error>] {
            let all = pending.values.map(\.continuation)
            pending.removeAll()
            ticketMids.removeAll()
            return all
        }
    }

    var isConnected: Bool { state.withLock { $0.connected } }
    /// The session number of the current connection (the last one while offline; nil before the first CONNACK).
    var session: UInt64? { state.withLock { $0.session } }
    /// The broker address of the current connection (the last one while offline).
    var broker: MQTTBrokerAddress? { state.withLock { $0.broker } }
    /// The connection's session number and whether it is up, read together.
    var link: (connected: Bool, session: UInt64?, broker: MQTTBrokerAddress?) {
        state.withLock { ($0.connected, $0.session, $0.broker) }
    }

    /// The protocol the next (or current) connection speaks: `.v5` or `.v311`, never `.auto`.
    /// Changed only by the network thread, between connections (auto fallback).
    private let protocolState: Mutex<MQTTProtocolVersion>
    var protocolInUse: MQTTProtocolVersion { protocolState.withLock { $0 } }
    /// Set by the CONNACK callback when an `.auto` client is refused protocol 5: retry at once with 3.1.1.
    private let fallBackNow = Atomic<Bool>(false)

    var messages: AsyncStream<MQTTMessage> {
        let queue = self.queue
        return AsyncStream(unfolding: { await queue.next() })
    }

    // Test hooks (internal, used through @testable import).
    /// Runs on the publishing thread between handing a message to the library and
    /// registering for its acknowledgement: lets a test make the PUBACK overtake us.
    let afterHandOffHook = Mutex<(@Sendable () -> Void)?>(nil)
    var pendingPublishCount: Int { state.withLock { $0.pending.count } }
    func isSubscriptionAcknowledged(_ filter: String) -> Bool {
        state.withLock { $0.subscriptions[filter]?.acknowledged ?? false }
    }

    // MARK: - Configuration

    private static func invalid(_ message: String) -> MQTTError {
        .library(code: Int32(CMOSQ_ERR_INVAL), message: "invalid configuration: \(message)")
    }

    static func validate(_ c: MQTTConfiguration) throws(MQTTError) {
        for address in c.brokerAddresses {
            if address.host.isEmpty || address.host.utf8.contains(0) { throw invalid("host must be a non-empty name or address") }
            if !(1...65535).contains(address.port) { throw invalid("port \(address.port) is not in 1…65535") }
        }
        if c.clientID.isEmpty || c.clientID.utf8.contains(0) || c.clientID.utf8.count > 65535 {
            throw invalid("clientID must be non-empty, without NUL, at most 65535 bytes")
        }
        if !(5...65535).contains(c.keepAliveSeconds) { throw invalid("keepAliveSeconds \(c.keepAliveSeconds) is not in 5…65535") }
        if !(1...65535).contains(c.maxInflight) { throw invalid("maxInflight \(c.maxInflight) is not in 1…65535") }
        if c.maximumPacketSize < 0 || c.maximumPacketSize > 268_435_460 { throw invalid("maximumPacketSize is not in 0…268435460") }
        if c.maxQueuedBytes < 0 { throw invalid("maxQueuedBytes must be ≥ 0") }
        for limit in c.payloadLimits {
            try checkTopicFilter(limit.filter)
            if limit.maxBytes < 0 { throw invalid("payload limit for \(limit.filter) must be ≥ 0") }
        }
        if c.reconnectDelayMin < 1 || c.reconnectDelayMax < c.reconnectDelayMin || c.reconnectDelayMax > 86_400 {
            throw invalid("reconnect delays must satisfy 1 ≤ min ≤ max ≤ 86400 (got \(c.reconnectDelayMin), \(c.reconnectDelayMax))")
        }
        if c.sessionExpirySeconds < 0 || c.sessionExpirySeconds > Int(UInt32.max) {
            throw invalid("sessionExpirySeconds is not in 0…\(UInt32.max)")
        }
        if let user = c.username, user.utf8.contains(0) { throw invalid("username must not contain NUL") }
        if let password = c.password {
            if c.username == nil { throw invalid("a password needs a username") }
            if password.utf8.contains(0) { throw invalid("password must not contain NUL") }
        }
        if let will = c.will {
            try checkTopicName(will.topic)
            if !(0...2).contains(will.qos) { throw invalid("will qos \(will.qos) is not 0, 1 or 2") }
            if will.payload.count > Int(cmosquitto_max_payload()) { throw MQTTError.payloadTooLarge }
        }
        if let tls = c.tls {
            if (tls.certFile == nil) != (tls.keyFile == nil) {
                throw MQTTError.tls("certFile and keyFile must be given together")
            }
            for path in [tls.caFile, tls.caPath, tls.certFile, tls.keyFile].compactMap({ $0 }) where path.isEmpty || path.utf8.contains(0) {
                throw MQTTError.tls("empty or malformed file path")
            }
        }
    }

    /// A topic name one may publish to: non-empty, no wildcards, valid UTF-8 without NUL.
    static func checkTopicName(_ topic: String) throws(MQTTError) {
        let ok = !topic.isEmpty && topic.utf8.count <= 65535 && !topic.utf8.contains(0)
            && topic.withCString { mosquitto_pub_topic_check2($0, topic.utf8.count) } == CMOSQ_ERR_SUCCESS
            && topic.withCString { mosquitto_validate_utf8($0, Int32(topic.utf8.count)) } == CMOSQ_ERR_SUCCESS
        if !ok { throw MQTTError.invalidTopic(topic) }
    }

    /// A subscription filter: like a topic name but `+` and `#` are allowed where MQTT allows them.
    static func checkTopicFilter(_ filter: String) throws(MQTTError) {
        let ok = !filter.isEmpty && filter.utf8.count <= 65535 && !filter.utf8.contains(0)
            && filter.withCString { mosquitto_sub_topic_check2($0, filter.utf8.count) } == CMOSQ_ERR_SUCCESS
            && filter.withCString { mosquitto_validate_utf8($0, Int32(filter.utf8.count)) } == CMOSQ_ERR_SUCCESS
        if !ok { throw MQTTError.invalidTopic(filter) }
    }

    private func configureHandle() throws {
        let c = configuration
        func check(_ rc: Int32, _ what: String) throws {
            if rc != CMOSQ_ERR_SUCCESS { throw MQTTError.library(code: rc, message: "\(what): \(Self.errorText(rc))") }
        }
        try check(cmosquitto_set_protocol_version(handle, protocolInUse == .v5 ? cmosquitto_protocol_v5() : cmosquitto_protocol_v311()),
                  "protocol version")
        try check(cmosquitto_set_send_maximum(handle, Int32(c.maxInflight)), "maxInflight")
        _ = cmosquitto_set_tcp_nodelay(handle, 1)  // best effort: small messages, low latency
        try check(mosquitto_threaded_set(handle, true), "threaded mode")
        if let user = c.username {
            // The error text never contains the credentials.
            try check(mosquitto_username_pw_set(handle, user, c.password), "username/password")
        }
        if let will = c.will, sessionHooks?.will == nil {
            try check(setWill(will), "will")
        }
        if let tls = c.tls { try configureTLS(tls) }

        mosquitto_connect_v5_callback_set(handle, onConnectCallback)
        mosquitto_disconnect_v5_callback_set(handle, onDisconnectCallback)
        mosquitto_publish_v5_callback_set(handle, onPublishCallback)
        mosquitto_message_v5_callback_set(handle, onMessageCallback)
        mosquitto_subscribe_v5_callback_set(handle, onSubscribeCallback)
    }

    private func setWill(_ will: MQTTWill) -> Int32 {
        will.payload.withUnsafeBytes { buf in
            mosquitto_will_set(handle, will.topic, Int32(buf.count), buf.baseAddress, Int32(will.qos), will.retain)
        }
    }

    private func configureTLS(_ tls: MQTTTLSConfiguration) throws {
        if tls.caFile == nil && tls.caPath == nil {
            let rc = cmosquitto_set_tls_use_os_certs(handle, 1)
            if rc != CMOSQ_ERR_SUCCESS { throw MQTTError.tls("cannot use the system trust store: \(Self.errorText(rc))") }
        }
        // mosquitto_tls_set needs a CA file or path; with the system store alone and no client
        // certificate there is nothing more to set (USE_OS_CERTS already enables TLS).
        if tls.caFile != nil || tls.caPath != nil || tls.certFile != nil {
            let caPath = tls.caPath ?? ((tls.caFile == nil) ? "/etc/ssl/certs" : nil)
            let rc = mosquitto_tls_set(handle, tls.caFile, caPath, tls.certFile, tls.keyFile, noPassphraseCallback)
            if rc != CMOSQ_ERR_SUCCESS {
                let files = [tls.caFile, caPath, tls.certFile, tls.keyFile].compactMap { $0 }.joined(separator: ", ")
                throw MQTTError.tls("cannot use CA/certificate/key files (\(files)): \(Self.errorText(rc))")
            }
        }
        if tls.insecureSkipVerify {
            var rc = mosquitto_tls_opts_set(handle, 0 /* SSL_VERIFY_NONE */, nil, nil)
            if rc == CMOSQ_ERR_SUCCESS { rc = mosquitto_tls_insecure_set(handle, true) }
            if rc != CMOSQ_ERR_SUCCESS { throw MQTTError.tls("cannot disable verification: \(Self.errorText(rc))") }
        }
    }

    static func errorText(_ rc: Int32) -> String {
        String(cString: mosquitto_strerror(rc))
    }

    /// Text for a code that is either a libmosquitto error (< 0x80) or an MQTT 5 reason code.
    static func codeText(_ rc: Int32) -> String {
        rc >= 0x80 ? String(cString: mosquitto_reason_string(rc)) : errorText(rc)
    }

    // MARK: - Lifecycle

    func start() throws {
        let shouldStart = try state.withLock { s throws(MQTTError) -> Bool in
            if s.stopped { throw .shutdown }
            if s.started { return false }
            s.started = true
            return true
        }
        guard shouldStart else { return }
        var thread = pthread_t()
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let core = Unmanaged<ClientCore>.fromOpaque(raw!).takeRetainedValue()
            core.runNetworkThread()
            return nil
        }, context)
        if rc != 0 {
            Unmanaged<ClientCore>.fromOpaque(context).release()
            state.withLock { $0.started = false }
            throw MQTTError.library(code: Int32(CMOSQ_ERR_ERRNO), message: "cannot start the network thread: \(String(cString: strerror(rc)))")
        }
        pthread_detach(thread)
    }

    /// Idempotent. Fails pending publishes with `.shutdown`, finishes both streams, sends
    /// DISCONNECT (so the broker does not publish the will) and waits up to
    /// `stopWaitSeconds` for the network thread to exit and destroy the handle.
    func stop() {
        let snapshot = state.withLock { s -> (started: Bool, connected: Bool, pending: [CheckedContinuation<Void, any Error>])? in
            if s.stopped { return nil }
            s.stopped = true
            let wasConnected = s.connected
            s.connected = false
            return (s.started, wasConnected, s.takeAllPending())
        }
        guard let (wasStarted, wasConnected, pendings) = snapshot else { return }
        stopRequested.store(true, ordering: .releasing)
        gate.withLock { open in
            open = false
            if wasStarted { _ = mosquitto_disconnect(handle) }
        }
        wake.signal()
        for continuation in pendings { continuation.resume(throwing: MQTTError.shutdown) }
        if wasConnected { eventSink.yield(.disconnected(code: 0, reason: "stopped")) }
        eventSink.finish()
        queue.finish()
        if wasStarted {
            _ = exited.wait(timeout: .now() + .seconds(Self.stopWaitSeconds))
        } else {
            destroyHandle()
        }
    }

    /// mosquitto_destroy, then release the reference the userdata held.
    private func destroyHandle() {
        mosquitto_destroy(handle)
        Unmanaged.passUnretained(self).release()
    }

    // MARK: - Network thread

    private func runNetworkThread() {
        var failures = 0
        var index = 0
        while !stopRequested.load(ordering: .acquiring) {
            let address = addresses[index]
            state.withLock {
                $0.attemptReported = false
                $0.connackThisAttempt = false
                $0.attemptAddress = address
            }
            switch prepareSession() {
            case .success:
                let rc = connectBlocking(to: address)
                if rc == CMOSQ_ERR_SUCCESS {
                    serveConnection()
                } else {
                    // Right after the call, on this thread: errno still describes a system error.
                    reportAttemptFailure(code: rc, reason: Self.errorText(rc))
                }
            case .failure(let error):
                reportAttemptFailure(code: error.code, reason: error.reason)
            }
            if stopRequested.load(ordering: .acquiring) { break }
            if state.withLock({ $0.connackThisAttempt }) { failures = 0 }
            if fallBackNow.exchange(false, ordering: .acquiringAndReleasing) {
                // The broker refused MQTT 5: speak 3.1.1 from now on, and try again at once (same address).
                protocolState.withLock { $0 = .v311 }
                _ = cmosquitto_set_protocol_version(handle, cmosquitto_protocol_v311())
                continue
            }
            // A lost connection or a failed attempt: the next address in turn (a cluster's other node).
            index = (index + 1) % addresses.count
            _ = wake.wait(timeout: .now() + .milliseconds(backoffMilliseconds(failures: failures)))
            failures = min(failures + 1, 32)
        }
        // Stopping: make sure a DISCONNECT leaves before the socket closes (no will), but
        // never wait long for a dead link.
        if mosquitto_socket(handle) >= 0 {
            _ = mosquitto_disconnect(handle)
            var rounds = 0
            while mosquitto_socket(handle) >= 0 && rounds < 20 {
                if mosquitto_loop(handle, 100, 1) != CMOSQ_ERR_SUCCESS { break }
                rounds += 1
            }
        }
        destroyHandle()
        exited.signal()
    }

    private struct SessionFailure: Error {
        let code: Int32
        let reason: String
    }

    /// Takes the attempt's session number and registers its will (libmosquitto sends the will set at
    /// the time of CONNECT, so it is set anew before every attempt).
    private func prepareSession() -> Result<Void, SessionFailure> {
        let number: UInt64
        if let hooks = sessionHooks {
            do { number = try hooks.nextSession() } catch {
                return .failure(SessionFailure(code: Int32(CMOSQ_ERR_ERRNO), reason: "no session number: \(error)"))
            }
        } else {
            number = state.withLock { s in s.localSessionCounter += 1; return s.localSessionCounter }
        }
        state.withLock { $0.attemptSession = number }
        if let makeWill = sessionHooks?.will {
            let will = makeWill(number)
            do { try Self.checkTopicName(will.topic) } catch {
                return .failure(SessionFailure(code: Int32(CMOSQ_ERR_INVAL), reason: "will: \(error)"))
            }
            let rc = setWill(will)
            if rc != CMOSQ_ERR_SUCCESS { return .failure(SessionFailure(code: rc, reason: "will: \(Self.errorText(rc))")) }
        }
        return .success(())
    }

    /// Blocking TCP connect (and TLS set-up) followed by sending CONNECT; the CONNACK is
    /// read by mosquitto_loop. Blocking because libmosquitto 2.0.11's asynchronous connect
    /// spins at full CPU on a refused TLS connection until the keepalive expires. libmosquitto's own
    /// reconnect (mosquitto_reconnect, loop_forever) only knows the last host; this thread picks the
    /// address of every attempt itself.
    private func connectBlocking(to address: MQTTBrokerAddress) -> Int32 {
        let c = configuration
        var props: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&props) }
        if protocolInUse == .v5 && !c.cleanSession {
            let rc = mosquitto_property_add_int32(&props, cmosquitto_prop_session_expiry_interval(), UInt32(c.sessionExpirySeconds))
            if rc != CMOSQ_ERR_SUCCESS { return rc }
        }
        if protocolInUse == .v5 && c.maximumPacketSize > 0 {
            // The broker sends nothing larger (MQTT 5 §3.1.2.11.4); mosquitto drops such a message for us.
            let rc = mosquitto_property_add_int32(&props, cmosquitto_prop_maximum_packet_size(), UInt32(c.maximumPacketSize))
            if rc != CMOSQ_ERR_SUCCESS { return rc }
        }
        return mosquitto_connect_bind_v5(handle, address.host, Int32(address.port), Int32(c.keepAliveSeconds), nil, props)
    }

    /// Blocks in mosquitto_loop until something happens, not on a short period: libmosquitto's pselect waits on the
    /// socket and on its own wake-up socket pair (written by every publish/subscribe/disconnect from another thread,
    /// mosquitto_threaded_set), and it shortens the timeout itself to the moment the next keepalive PINGREQ is due
    /// (`next_msg_out`), so pings stay on time. `stop()` wakes it through mosquitto_disconnect's packet. The timeout
    /// passed is only the upper bound when keepalive is off.
    private func serveConnection() {
        let timeoutMs = Int32(clamping: max(configuration.keepAliveSeconds, 1) * 1000)
        while !stopRequested.load(ordering: .acquiring) {
            let rc = mosquitto_loop(handle, timeoutMs, 1)
            if sawLargePacket.exchange(false, ordering: .relaxed) {
                // libmosquitto has freed the packet by now; without this glibc keeps the pages.
                cmosquitto_malloc_trim()
            }
            if rc != CMOSQ_ERR_SUCCESS || mosquitto_socket(handle) < 0 {
                // Usually the library already called on_disconnect; if not, this reports it.
                linkDown(code: rc == CMOSQ_ERR_SUCCESS ? CMOSQ_ERR_CONN_LOST : rc)
                return
            }
        }
    }

    private func backoffMilliseconds(failures: Int) -> Int {
        let minMs = configuration.reconnectDelayMin * 1000
        let maxMs = configuration.reconnectDelayMax * 1000
        let base = Double(minMs) * pow(2.0, Double(min(failures, 20)))
        let jittered = base * Double.random(in: 0.8...1.2)
        return Int(max(Double(minMs), min(Double(maxMs), jittered)))
    }

    // MARK: - Callbacks (network thread)

    private enum AttemptOutcome {
        case none
        case failed
        case lost([CheckedContinuation<Void, any Error>])
    }

    private func reportAttemptFailure(code: Int32, reason: String) {
        let report = state.withLock { s -> Bool in
            if s.stopped || s.attemptReported { return false }
            s.attemptReported = true
            return true
        }
        if report { eventSink.yield(.connectFailed(code: code, reason: reason)) }
    }

    fileprivate func didConnect(code: Int32, flags: Int32) {
        guard code == 0 else {
            let v5 = protocolInUse == .v5
            var reason = v5 ? String(cString: mosquitto_reason_string(code)) : String(cString: mosquitto_connack_string(code))
            if v5 && configuration.protocolVersion == .auto && code == cmosquitto_rc_unsupported_protocol_version() {
                fallBackNow.store(true, ordering: .releasing)
                reason += "; falling back to MQTT 3.1.1"
            }
            reportAttemptFailure(code: code, reason: reason)
            return
        }
        let sessionPresent = flags & 1 != 0
        let toSubscribe = state.withLock { s -> [(String, Int32, Int32)]? in
            if s.stopped { return nil }
            s.connected = true
            s.attemptReported = true
            s.connackThisAttempt = true
            s.session = s.attemptSession
            s.broker = s.attemptAddress
            s.subscribeMids.removeAll()
            if !sessionPresent {
                for key in s.subscriptions.keys { s.subscriptions[key]!.acknowledged = false }
            }
            return s.subscriptions.filter { !$0.value.acknowledged }.map { ($0.key, $0.value.qos, $0.value.options) }
                .sorted { $0.0 < $1.0 }
        }
        guard let toSubscribe else { return }
        // Subscribing from inside the callback is allowed; the SUBACK cannot overtake us
        // because it is read by this same thread.
        for (filter, qos, options) in toSubscribe {
            var mid: Int32 = 0
            if mosquitto_subscribe_v5(handle, &mid, filter, qos, options, nil) == CMOSQ_ERR_SUCCESS {
                state.withLock { $0.subscribeMids[mid, default: []].append(filter) }
            }
        }
        eventSink.yield(.connected(sessionPresent: sessionPresent))
    }

    fileprivate func linkDown(code: Int32) {
        let outcome = state.withLock { s -> AttemptOutcome in
            if s.stopped { return .none }
            if s.connected {
                s.connected = false
                s.linkEpoch &+= 1
                s.attemptReported = true
                s.subscribeMids.removeAll()
                return .lost(s.takeAllPending())
            }
            if !s.attemptReported {
                s.attemptReported = true
                return .failed
            }
            return .none
        }
        switch outcome {
        case .none:
            break
        case .failed:
            eventSink.yield(.connectFailed(code: code, reason: Self.codeText(code)))
        case .lost(let pendings):
            for continuation in pendings { continuation.resume(throwing: MQTTError.connectionLost) }
            eventSink.yield(.disconnected(code: code, reason: Self.codeText(code)))
        }
    }

    fileprivate func didAcknowledge(mid: Int32, reasonCode: Int32) {
        let continuation = state.withLock { s -> CheckedContinuation<Void, any Error>? in
            if let p = s.pending.removeValue(forKey: mid) {
                s.ticketMids[p.ticket] = nil
                return p.continuation
            }
            // A publisher may not have registered its mid yet: keep the ack for it. Acks no
            // in-progress publisher can own (re-sends of messages whose publish already
            // failed with .connectionLost, QoS 0 completions) are dropped.
            if !s.inProgress.isEmpty {
                s.earlyAcks[mid] = EarlyAck(reasonCode: reasonCode, ticketBound: s.nextTicket - 1)
            }
            return nil
        }
        continuation?.resume(with: Self.ackResult(reasonCode))
    }

    private static func ackResult(_ reasonCode: Int32) -> Result<Void, any Error> {
        reasonCode < 0x80 ? .success(())
            : .failure(MQTTError.library(code: reasonCode, message: String(cString: mosquitto_reason_string(reasonCode))))
    }

    fileprivate func didSubscribe(mid: Int32, granted: [Int32]) {
        state.withLock { s in
            if let filters = s.subscribeMids.removeValue(forKey: mid) {
                s.applySuback(filters: filters, granted: granted)
            } else if s.subscribesInProgress > 0 {
                s.earlySubacks[mid] = granted
            }
        }
    }

    fileprivate func didReceive(_ message: MQTTMessage) {
        if state.withLock({ $0.stopped }) { return }
        queue.push(message)
    }

    /// The payload limit for a received message on `topic` (0: none): the first matching
    /// `payloadLimits` entry, and never above `maximumPacketSize`.
    fileprivate func payloadLimit(topic: UnsafePointer<CChar>) -> Int {
        var limit = configuration.maximumPacketSize
        for l in configuration.payloadLimits {
            var matches = false
            if mosquitto_topic_matches_sub(l.filter, topic, &matches) == CMOSQ_ERR_SUCCESS, matches {
                limit = limit == 0 ? l.maxBytes : min(limit, l.maxBytes)
                break
            }
        }
        return limit
    }

    fileprivate func noteLargePacket() { sawLargePacket.store(true, ordering: .relaxed) }

    // MARK: - Caller API

    func subscribe(_ filter: String, qos: Int, retainAsPublished: Bool = false) throws {
        let options: Int32 = retainAsPublished ? Int32(cmosquitto_sub_opt_retain_as_published()) : 0
        try Self.checkTopicFilter(filter)
        guard (0...2).contains(qos) else { throw MQTTError.library(code: Int32(CMOSQ_ERR_INVAL), message: "qos \(qos) is not 0, 1 or 2") }
        let sendNow = try state.withLock { s throws(MQTTError) -> Bool in
            if s.stopped { throw .shutdown }
            s.subscriptions[filter] = Subscription(qos: Int32(qos), options: options, acknowledged: false)
            if s.connected { s.subscribesInProgress += 1 }
            return s.connected
        }
        // Not connected: the next successful CONNACK subscribes (the entry is unacknowledged).
        guard sendNow else { return }
        var mid: Int32 = 0
        let rc = gate.withLock { open -> Int32 in
            guard open else { return -1000 }
            return mosquitto_subscribe_v5(handle, &mid, filter, Int32(qos), options, nil)
        }
        state.withLock { s in
            s.subscribesInProgress -= 1
            if rc == CMOSQ_ERR_SUCCESS {
                if let granted = s.earlySubacks.removeValue(forKey: mid) {
                    s.applySuback(filters: [filter], granted: granted)
                } else {
                    s.subscribeMids[mid, default: []].append(filter)
                }
            }
            if s.subscribesInProgress == 0 { s.earlySubacks.removeAll() }
        }
        switch rc {
        case CMOSQ_ERR_SUCCESS:
            break
        case -1000:
            throw MQTTError.shutdown
        case CMOSQ_ERR_NO_CONN:
            break  // the link just dropped; re-subscribed on the next CONNACK
        case CMOSQ_ERR_MALFORMED_UTF8:
            throw MQTTError.invalidTopic(filter)
        default:
            throw MQTTError.library(code: rc, message: Self.errorText(rc))
        }
    }

    /// A message handed to the library whose acknowledgement has not been awaited yet.
    struct Handoff: Sendable {
        let ticket: UInt64
        let mid: Int32
        let epoch: UInt64
        /// QoS 0 (or already settled): nothing to wait for.
        let settled: Bool
    }

    func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool,
                 properties: MQTTPublishProperties?) async throws {
        let handoff = try enqueue(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties)
        try await acknowledgement(of: handoff)
    }

    /// Steps 1 and 2 of a publish, synchronously: the message is in the library's queue when this returns,
    /// so calls made one after the other reach the broker in that order (the event log relies on it).
    func enqueue(topic: String, payload: [UInt8], qos: Int, retain: Bool,
                 properties: MQTTPublishProperties?) throws -> Handoff {
        try Self.checkTopicName(topic)
        guard (0...2).contains(qos) else { throw MQTTError.library(code: Int32(CMOSQ_ERR_INVAL), message: "qos \(qos) is not 0, 1 or 2") }
        guard payload.count <= Int(cmosquitto_max_payload()) else { throw MQTTError.payloadTooLarge }
        let useProperties = protocolInUse == .v5 ? properties : nil
        if let rt = useProperties?.responseTopic { try Self.checkTopicName(rt) }
        if let cd = useProperties?.correlationData, cd.count > 65535 {
            throw MQTTError.library(code: Int32(CMOSQ_ERR_INVAL), message: "correlation data longer than 65535 bytes")
        }

        // 1. Take a ticket (refuses at once when offline: nothing reaches the library's queue).
        let (ticket, epoch) = try state.withLock { s throws(MQTTError) -> (UInt64, UInt64) in
            if s.stopped { throw .shutdown }
            guard s.connected else { throw .notConnected }
            let t = s.nextTicket
            s.nextTicket += 1
            s.inProgress.insert(t)
            return (t, s.linkEpoch)
        }

        // 2. Hand the message to the library.
        var mid: Int32 = 0
        let rc = gate.withLock { open -> Int32 in
            guard open else { return -1000 }
            var props: OpaquePointer? = nil
            defer { mosquitto_property_free_all(&props) }
            if let p = useProperties {
                if let rt = p.responseTopic {
                    let prc = mosquitto_property_add_string(&props, cmosquitto_prop_response_topic(), rt)
                    if prc != CMOSQ_ERR_SUCCESS { return prc }
                }
                if let cd = p.correlationData {
                    let prc = cd.withUnsafeBytes { buf in
                        mosquitto_property_add_binary(&props, cmosquitto_prop_correlation_data(), buf.baseAddress, UInt16(buf.count))
                    }
                    if prc != CMOSQ_ERR_SUCCESS { return prc }
                }
            }
            return payload.withUnsafeBytes { buf in
                mosquitto_publish_v5(handle, &mid, topic, Int32(buf.count), buf.baseAddress, Int32(qos), retain, props)
            }
        }
        if let hook = afterHandOffHook.withLock({ $0 }) { hook() }
        if rc != CMOSQ_ERR_SUCCESS || qos == 0 {
            state.withLock { $0.finishTicket(ticket) }
            switch rc {
            case CMOSQ_ERR_SUCCESS: return Handoff(ticket: ticket, mid: mid, epoch: epoch, settled: true)
            case -1000: throw MQTTError.shutdown
            // The link dropped between our check and the call. For QoS > 0 libmosquitto has
            // queued the message anyway and will send it after the next connect (a duplicate
            // of the caller's own re-publish; ABS de-duplicates by event_id).
            case CMOSQ_ERR_NO_CONN: throw MQTTError.notConnected
            case CMOSQ_ERR_CONN_LOST: throw MQTTError.connectionLost
            case CMOSQ_ERR_PAYLOAD_SIZE, CMOSQ_ERR_OVERSIZE_PACKET: throw MQTTError.payloadTooLarge
            case CMOSQ_ERR_MALFORMED_UTF8: throw MQTTError.invalidTopic(topic)
            default: throw MQTTError.library(code: rc, message: Self.errorText(rc))
            }
        }
        return Handoff(ticket: ticket, mid: mid, epoch: epoch, settled: false)
    }

    /// Step 3: waits for the PUBACK/PUBCOMP of an enqueued message (or the link's loss, stop(), cancellation).
    func acknowledgement(of handoff: Handoff) async throws {
        if handoff.settled { return }
        let ticket = handoff.ticket, mid = handoff.mid, epoch = handoff.epoch
        // 3. Wait for PUBACK/PUBCOMP (or the link's loss, stop(), cancellation).
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let resolution = state.withLock { s -> Result<Void, any Error>? in
                    defer { s.finishTicket(ticket) }
                    if let early = s.earlyAcks.removeValue(forKey: mid), early.ticketBound >= ticket {
                        return Self.ackResult(early.reasonCode)
                    }
                    if s.stopped { return .failure(MQTTError.shutdown) }
                    if s.cancelledTickets.contains(ticket) { return .failure(CancellationError()) }
                    if !s.connected || s.linkEpoch != epoch { return .failure(MQTTError.connectionLost) }
                    s.pending[mid] = Pending(ticket: ticket, continuation: continuation)
                    s.ticketMids[ticket] = mid
                    return nil
                }
                if let resolution { continuation.resume(with: resolution) }
            }
        } onCancel: {
            let continuation = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                if let mid = s.ticketMids.removeValue(forKey: ticket), let p = s.pending.removeValue(forKey: mid) {
                    return p.continuation
                }
                if s.inProgress.contains(ticket) { s.cancelledTickets.insert(ticket) }
                return nil
            }
            continuation?.resume(throwing: CancellationError())
        }
    }
}

// MARK: - C callbacks: capture-free, they only recover the core from userdata.

private func core(_ userdata: UnsafeMutableRawPointer?) -> ClientCore? {
    guard let userdata else { return nil }
    return Unmanaged<ClientCore>.fromOpaque(userdata).takeUnretainedValue()
}

private let onConnectCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, OpaquePointer?) -> Void = {
    _, userdata, rc, flags, _ in
    core(userdata)?.didConnect(code: rc, flags: flags)
}

private let onDisconnectCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, OpaquePointer?) -> Void = {
    _, userdata, rc, _ in
    core(userdata)?.linkDown(code: rc)
}

private let onPublishCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, OpaquePointer?) -> Void = {
    _, userdata, mid, reasonCode, _ in
    core(userdata)?.didAcknowledge(mid: mid, reasonCode: reasonCode)
}

private let onSubscribeCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, UnsafePointer<Int32>?, OpaquePointer?) -> Void = {
    _, userdata, mid, count, granted, _ in
    let codes = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(max(count, 0)))) } ?? []
    core(userdata)?.didSubscribe(mid: mid, granted: codes)
}

private let onMessageCallback: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafePointer<mosquitto_message>?, OpaquePointer?) -> Void = {
    _, userdata, message, props in
    guard let core = core(userdata), let m = message?.pointee, let topicPointer = m.topic else { return }
    let size = Int(max(m.payloadlen, 0))
    if size >= ClientCore.largePacketBytes { core.noteLargePacket() }
    // Oversize or no room: keep nothing of the payload (libmosquitto frees its copy after we return).
    var discarded: MQTTDiscard? = nil
    let limit = core.payloadLimit(topic: topicPointer)
    if limit > 0 && size > limit {
        discarded = .oversize(limit: limit)
    } else if !core.queue.hasRoom(for: size) {
        discarded = .queueFull(limit: core.queue.limit)
    }
    let payload: [UInt8] = discarded != nil ? [] : (m.payload.map { Array(UnsafeRawBufferPointer(start: $0, count: size)) } ?? [])
    var responseTopic: String? = nil
    var correlationData: [UInt8]? = nil
    if let props {
        var value: UnsafeMutablePointer<CChar>? = nil
        if mosquitto_property_read_string(props, cmosquitto_prop_response_topic(), &value, false) != nil, let value {
            responseTopic = String(cString: value)
        }
        free(value)
        var data: UnsafeMutableRawPointer? = nil
        var length: UInt16 = 0
        if mosquitto_property_read_binary(props, cmosquitto_prop_correlation_data(), &data, &length, false) != nil {
            correlationData = data.map { Array(UnsafeRawBufferPointer(start: $0, count: Int(length))) } ?? []
        }
        free(data)
    }
    core.didReceive(MQTTMessage(topic: String(cString: topicPointer), payload: payload, qos: Int(m.qos),
                                retain: m.retain, responseTopic: responseTopic, correlationData: correlationData,
                                discarded: discarded, size: size))
}

/// Refuses to prompt for a key passphrase (OpenSSL would otherwise read the terminal).
private let noPassphraseCallback: @convention(c) (UnsafeMutablePointer<CChar>?, Int32, Int32, UnsafeMutableRawPointer?) -> Int32 = {
    _, _, _, _ in 0
}
