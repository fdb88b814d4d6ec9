// The public value types of the MQTT adapter. No C type appears here: everything that
// touches libmosquitto lives in ClientCore.swift and Callbacks.swift.

/// The MQTT protocol level spoken on the wire.
public enum MQTTProtocolVersion: Sendable, Hashable {
    case v311
    case v5
    /// MQTT 5, falling back to 3.1.1 when the broker refuses protocol 5 in its CONNACK
    /// (reason 0x84, or a 3.1.1 CONNACK "unacceptable protocol version"). Once fallen back, the
    /// client stays on 3.1.1 for its life (`MQTTClient.protocolInUse` says which one it speaks).
    case auto
}

/// A limit on the size of the payloads the client takes for the topics matching `filter`
/// (MQTT wildcards allowed). The first matching limit of `MQTTConfiguration.payloadLimits` applies.
public struct MQTTPayloadLimit: Sendable, Hashable {
    public var filter: String
    public var maxBytes: Int
    public init(filter: String, maxBytes: Int) {
        self.filter = filter
        self.maxBytes = maxBytes
    }
}

/// Why a received message reached the consumer without its payload.
public enum MQTTDiscard: Sendable, Hashable {
    /// Larger than `maximumPacketSize` or than the topic's `payloadLimits` entry.
    case oversize(limit: Int)
    /// The receive queue already held `maxQueuedBytes`: the consumer is behind.
    case queueFull(limit: Int)
}

/// TLS settings. `nil` for `MQTTConfiguration.tls` means plain TCP.
///
/// With neither `caFile` nor `caPath` the operating system's trust store is used.
/// `insecureSkipVerify` disables both the chain check and the host name check; it is
/// meant for development brokers only.
public struct MQTTTLSConfiguration: Sendable, Hashable {
    public var caFile: String?
    public var caPath: String?
    /// Client certificate (PEM). Requires `keyFile`.
    public var certFile: String?
    /// Private key of the client certificate (PEM, unencrypted).
    public var keyFile: String?
    public var insecureSkipVerify: Bool

    public init(caFile: String? = nil, caPath: String? = nil, certFile: String? = nil,
                keyFile: String? = nil, insecureSkipVerify: Bool = false) {
        self.caFile = caFile
        self.caPath = caPath
        self.certFile = certFile
        self.keyFile = keyFile
        self.insecureSkipVerify = insecureSkipVerify
    }
}

/// The last will the broker publishes when the link dies without a clean DISCONNECT.
public struct MQTTWill: Sendable, Hashable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int
    public var retain: Bool

    public init(topic: String, payload: [UInt8], qos: Int = 1, retain: Bool = false) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
    }
}

/// One broker address: a host name or IP address (IPv6 without brackets) and a TCP port.
public struct MQTTBrokerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `"host:port"`; an IPv6 address is written in brackets, `"[::1]:1883"`. Nil when malformed
    /// (no port, a port outside 1…65535, an empty host, an unbracketed IPv6 address).
    public init?(parsing text: String) {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portText = rest.dropFirst()
            guard host.contains(":") else { return nil }
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }   // IPv6 must be bracketed
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\0" || $0 == "[" || $0 == "]" || $0 == "/" }),
              portText.allSatisfy(\.isASCII), let port = Int(portText), (1...65535).contains(port) else { return nil }
        self.host = String(host)
        self.port = port
    }

    /// `host:port`, with brackets around an IPv6 address.
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Everything the client needs to reach one broker (or one of several nodes of a cluster). Validated by
/// `MQTTClient.init`.
///
/// Its `description`, `debugDescription` and mirror never show the password.
public struct MQTTConfiguration: Sendable, Hashable {
    public var host: String
    public var port: Int
    /// Several broker addresses (the nodes of a cluster). When not empty it replaces `host`/`port`: the
    /// client connects to the first, and after every lost connection or failed attempt moves to the next
    /// one in turn (wrapping around), with the usual backoff. TLS, credentials, client id and the
    /// persistent session are the same on every address. Empty (default): `host`:`port` alone.
    public var addresses: [MQTTBrokerAddress]
    public var clientID: String
    /// `false` (default): a persistent session. The broker keeps subscriptions and queues
    /// QoS 1/2 messages while the client is offline. With MQTT 5 the session expiry
    /// interval sent in CONNECT is `sessionExpirySeconds`.
    public var cleanSession: Bool
    /// 5…65535. A link that stays silent for about 1.5 × this is declared dead; it is
    /// also the bound on how long a connection attempt may wait for its CONNACK.
    public var keepAliveSeconds: Int
    public var protocolVersion: MQTTProtocolVersion
    public var username: String?
    public var password: String?
    public var tls: MQTTTLSConfiguration?
    public var will: MQTTWill?
    /// How many QoS 1/2 publishes may await their acknowledgement at once (MQTT 5:
    /// further capped by the broker's Receive Maximum). Further publishes wait in the
    /// library's queue.
    public var maxInflight: Int
    /// Reconnect backoff in seconds: doubles from `reconnectDelayMin` up to
    /// `reconnectDelayMax` (with ±20 % jitter inside those bounds), back to the minimum
    /// after a connection that reached CONNACK.
    public var reconnectDelayMin: Int
    public var reconnectDelayMax: Int
    /// MQTT 5 only, and only when `cleanSession` is false: how long the broker keeps the
    /// session after the link drops. Default 7 days.
    public var sessionExpirySeconds: Int
    /// The largest packet the client takes, in bytes (0: no limit). With MQTT 5 it is sent in
    /// CONNECT (Maximum Packet Size), so the broker does not send larger packets at all; with
    /// either protocol a larger message that still arrives has its payload discarded at once
    /// (`MQTTMessage.discarded`).
    public var maximumPacketSize: Int
    /// Per-topic payload limits, checked on receipt (first match wins); a message over its limit
    /// reaches the consumer without its payload (`discarded == .oversize`).
    public var payloadLimits: [MQTTPayloadLimit]
    /// The most payload bytes the receive queue holds for a slow consumer (0: no limit). A message
    /// that does not fit (when the queue is not empty) reaches the consumer without its payload
    /// (`discarded == .queueFull`): libmosquitto has already acknowledged it, so it is reported,
    /// never silently dropped.
    public var maxQueuedBytes: Int

    /// The addresses the client cycles through: `addresses`, or `host`:`port` when that is empty.
    public var brokerAddresses: [MQTTBrokerAddress] {
        addresses.isEmpty ? [MQTTBrokerAddress(host: host, port: port)] : addresses
    }

    /// Several addresses: `host`/`port` are set to the first.
    public init(addresses: [MQTTBrokerAddress], clientID: String) {
        self.init(host: addresses.first?.host ?? "", port: addresses.first?.port ?? 0, clientID: clientID)
        self.addresses = addresses
    }

    public init(host: String, port: Int, clientID: String) {
        self.host = host
        self.port = port
        self.addresses = []
        self.clientID = clientID
        self.cleanSession = false
        self.keepAliveSeconds = 30
        self.protocolVersion = .v311
        self.username = nil
        self.password = nil
        self.tls = nil
        self.will = nil
        self.maxInflight = 20
        self.reconnectDelayMin = 1
        self.reconnectDelayMax = 30
        self.sessionExpirySeconds = 7 * 24 * 3600
        self.maximumPacketSize = 0
        self.payloadLimits = []
        self.maxQueuedBytes = 0
    }
}

extension MQTTConfiguration: CustomStringConvertible, CustomDebugStringConvertible, CustomReflectable {
    public var description: String {
        var parts = addresses.isEmpty ? ["host: \(host)", "port: \(port)"] : ["addresses: \(addresses.map(\.description).joined(separator: " "))"]
        parts += ["clientID: \(clientID)",
                     "cleanSession: \(cleanSession)", "keepAliveSeconds: \(keepAliveSeconds)",
                     "protocolVersion: \(protocolVersion)"]
        if let username { parts.append("username: \(username)") }
        if password != nil { parts.append("password: <redacted>") }
        parts.append("tls: \(tls.map { "\($0)" } ?? "nil")")
        if let will { parts.append("will: \(will.topic) (qos \(will.qos), retain \(will.retain))") }
        parts.append("maxInflight: \(maxInflight)")
        parts.append("reconnectDelay: \(reconnectDelayMin)…\(reconnectDelayMax) s")
        return "MQTTConfiguration(" + parts.joined(separator: ", ") + ")"
    }

    public var debugDescription: String { description }

    public var customMirror: Mirror {
        Mirror(self, children: [
            "host": host, "port": port, "addresses": addresses, "clientID": clientID, "cleanSession": cleanSession,
            "keepAliveSeconds": keepAliveSeconds, "protocolVersion": protocolVersion,
            "username": username as Any, "password": password == nil ? "nil" : "<redacted>",
            "tls": tls as Any, "will": will as Any, "maxInflight": maxInflight,
            "reconnectDelayMin": reconnectDelayMin, "reconnectDelayMax": reconnectDelayMax,
            "sessionExpirySeconds": sessionExpirySeconds, "maximumPacketSize": maximumPacketSize,
            "payloadLimits": payloadLimits, "maxQueuedBytes": maxQueuedBytes,
        ], displayStyle: .struct)
    }
}

/// Birth/death sessions (abs-mqtt.md, "Birth, death and resync"): before every connection attempt the
/// client asks `nextSession` for the attempt's session number (the owner raises it by one and keeps it
/// durably, so it also rises across restarts), then registers `will(n)` as the last will of that
/// connection (mosquitto_will_set, anew before every connect), so the broker's death notice carries the
/// same number as the birth the owner publishes on connect (`MQTTClient.session`).
///
/// `nextSession` runs on the network thread right before CONNECT: it must be quick. When it throws, the
/// attempt is not made (reported as `connectFailed`) and retried after the backoff.
public struct MQTTSessionHooks: Sendable {
    public var nextSession: @Sendable () throws -> UInt64
    public var will: (@Sendable (UInt64) -> MQTTWill)?

    public init(nextSession: @escaping @Sendable () throws -> UInt64, will: (@Sendable (UInt64) -> MQTTWill)? = nil) {
        self.nextSession = nextSession
        self.will = will
    }
}

/// A message the broker delivered for one of the client's subscriptions.
public struct MQTTMessage: Sendable, Hashable {
    public let topic: String
    public let payload: [UInt8]
    public let qos: Int
    /// Set when the broker delivered a retained message: from its retained store (right after
    /// SUBSCRIBE), and, with MQTT 5 and a subscription made with `retainAsPublished`, also for a
    /// message published with retain while subscribed (and queued in the session meanwhile).
    /// With MQTT 3.1.1 a broker clears the flag on live delivery.
    public let retain: Bool
    /// MQTT 5 Response Topic property; always nil with MQTT 3.1.1.
    public let responseTopic: String?
    /// MQTT 5 Correlation Data property; always nil with MQTT 3.1.1.
    public let correlationData: [UInt8]?
    /// Set when the payload was not kept (too large, or the receive queue was full); `payload` is
    /// then empty and `size` is the payload's size on the wire.
    public let discarded: MQTTDiscard?
    /// The payload's size as received (equals `payload.count` unless `discarded`).
    public let size: Int

    public init(topic: String, payload: [UInt8], qos: Int, retain: Bool,
                responseTopic: String? = nil, correlationData: [UInt8]? = nil,
                discarded: MQTTDiscard? = nil, size: Int? = nil) {
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.responseTopic = responseTopic
        self.correlationData = correlationData
        self.discarded = discarded
        self.size = size ?? payload.count
    }
}

/// MQTT 5 PUBLISH properties. Ignored with MQTT 3.1.1.
public struct MQTTPublishProperties: Sendable, Hashable {
    public var responseTopic: String?
    public var correlationData: [UInt8]?

    public init(responseTopic: String? = nil, correlationData: [UInt8]? = nil) {
        self.responseTopic = responseTopic
        self.correlationData = correlationData
    }
}

/// What happened to the link. Codes:
/// - `connected`: the broker accepted the CONNECT; `sessionPresent` says whether it still
///   had this client's persistent session (subscriptions and queued messages).
/// - `connectFailed`: an attempt did not reach a successful CONNACK. `code` is the CONNACK
///   return code (MQTT 3.1.1, 1…5) or reason code (MQTT 5, ≥ 0x80) when the broker refused,
///   otherwise a libmosquitto error code (e.g. 7 connection lost, 14 system error,
///   15 name lookup, 19 keepalive/timeout). The client keeps retrying.
/// - `disconnected`: an established link ended. Code 0 is a clean end (`stop()`); otherwise
///   a libmosquitto error code, or an MQTT 5 DISCONNECT reason code (≥ 0x80) sent by the broker.
public enum MQTTConnectionEvent: Sendable, Hashable {
    case connected(sessionPresent: Bool)
    case disconnected(code: Int32, reason: String)
    case connectFailed(code: Int32, reason: String)
}

public enum MQTTError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The client was not connected when the call was made; nothing was handed to the library.
    case notConnected
    /// The link dropped before the broker acknowledged the publish. The message may or may
    /// not have reached the broker.
    case connectionLost
    case invalidTopic(String)
    case payloadTooLarge
    /// A libmosquitto error code (or an MQTT 5 reason code ≥ 0x80 from the broker) and its text.
    case library(code: Int32, message: String)
    case tls(String)
    /// `stop()` was called.
    case shutdown

    public var description: String {
        switch self {
        case .notConnected: return "MQTT client is not connected"
        case .connectionLost: return "MQTT connection lost before the broker acknowledged"
        case .invalidTopic(let t): return "invalid MQTT topic: \(t.debugDescription)"
        case .payloadTooLarge: return "MQTT payload too large"
        case .library(let code, let message): return "MQTT error \(code): \(message)"
        case .tls(let message): return "MQTT TLS error: \(message)"
        case .shutdown: return "MQTT client was stopped"
        }
    }
}
