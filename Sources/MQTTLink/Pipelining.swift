// TEMPORARY (not committed): sequential stand-in until the two-phase publish lands.
public final class MQTTDelivery: Sendable {
    let op: @Sendable () async throws -> Void
    init(_ op: @escaping @Sendable () async throws -> Void) { self.op = op }
    public func wait() async throws { try await op() }
}
extension MQTTClient {
    public func send(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws -> MQTTDelivery {
        MQTTDelivery { try await self.publish(topic: topic, payload: payload, qos: qos, retain: retain) }
    }
}
