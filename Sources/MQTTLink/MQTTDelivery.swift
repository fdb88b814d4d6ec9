/// A message already handed to the library, whose acknowledgement can be awaited later.
///
/// `MQTTClient.send` returns as soon as the message is queued, so a caller can keep a window of
/// messages in flight *in order* (calls made one after the other reach the broker in that order) and
/// await their PUBACKs afterwards. `publish` is `send` followed by `wait()`.
public struct MQTTDelivery: Sendable {
    let core: ClientCore
    let handoff: ClientCore.Handoff

    /// Returns after the broker's PUBACK/PUBCOMP (at once for QoS 0). Throws like `publish`.
    public func wait() async throws { try await core.acknowledgement(of: handoff) }
}

extension MQTTClient {
    /// Hands the message to the library and returns without waiting for the acknowledgement.
    /// Throws `.notConnected` when offline (nothing is queued then), like `publish`.
    public func send(topic: String, payload: [UInt8], qos: Int, retain: Bool,
                     properties: MQTTPublishProperties? = nil) throws -> MQTTDelivery {
        MQTTDelivery(core: core, handoff: try core.enqueue(topic: topic, payload: payload, qos: qos, retain: retain, properties: properties))
    }
}
