import CMosquitto
import Foundation

/// The decision benchmark's floor under "a command answered by a station": a bare libmosquitto client that
/// subscribes to a station's command topics and answers each signed command on its reply topic through the same
/// broker, with no logic — no signature check, no rules, no store: it only lifts `request_id` out of the envelope's
/// base64 payload and publishes `{"request_id":…,"ok":true}` at QoS 1 from libmosquitto's own network thread.
/// `swapbench decision` times the same signed swap commands against it and against the gateway:
/// gateway cost = gateway − relay.
final class RelayClient: @unchecked Sendable {
    // @unchecked: `mosq` is used by libmosquitto's thread (callbacks) and by `stop()` after the loop ends;
    // `subscribed`/`answered` are only touched on libmosquitto's thread until `stop()`.
    let topics: (commands: String, reply: String)
    private var mosq: OpaquePointer?
    private let ready = DispatchSemaphore(value: 0)
    var answered = 0

    init(port: Int, commandFilter: String, replyTopic: String) throws {
        topics = (commandFilter, replyTopic)
        mosquitto_lib_init()
        guard let m = mosquitto_new("swapbench-relay", true, nil) else { throw BenchError("relay: mosquitto_new") }
        mosq = m
        mosquitto_user_data_set(m, Unmanaged.passUnretained(self).toOpaque())
        mosquitto_connect_callback_set(m, relayOnConnect)
        mosquitto_subscribe_callback_set(m, relayOnSubscribe)
        mosquitto_message_callback_set(m, relayOnMessage)
        // Nagle off: the PUBACK of the command and the reply are two small writes back to back; with Nagle the reply
        // waits for the broker's delayed ACK of the PUBACK (~40 ms). The floor is a client tuned for latency.
        _ = mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1)
        guard mosquitto_connect(m, "127.0.0.1", Int32(port), 30) == 0 else { throw BenchError("relay: connect") }
        guard mosquitto_loop_start(m) == 0 else { throw BenchError("relay: loop_start") }
        guard ready.wait(timeout: .now() + 10) == .success else { throw BenchError("relay: never subscribed") }
    }

    func stop() {
        guard let m = mosq else { return }
        mosquitto_disconnect(m)
        mosquitto_loop_stop(m, false)
        mosquitto_destroy(m)
        mosq = nil
    }

    fileprivate func connected(_ m: OpaquePointer) {
        _ = mosquitto_subscribe(m, nil, topics.commands, 1)
    }

    fileprivate func subscribed() { ready.signal() }

    fileprivate func received(_ m: OpaquePointer, _ payload: UnsafeRawBufferPointer) {
        guard let id = Self.requestID(envelope: payload) else { return }
        let reply = Array("{\"request_id\":\"\(id)\",\"ok\":true}".utf8)
        _ = reply.withUnsafeBytes { mosquitto_publish(m, nil, topics.reply, Int32($0.count), $0.baseAddress, 1, false) }
        answered += 1
    }

    /// `request_id` of the command inside an envelope `{"kid":…,"payload":"<base64>","sig":…}`, by plain search.
    static func requestID(envelope: UnsafeRawBufferPointer) -> String? {
        let bytes = Array(envelope)
        guard let p = find(Array("\"payload\":\"".utf8), in: bytes, from: 0) else { return nil }
        guard let end = bytes[p...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        guard let command = Data(base64Encoded: Data(bytes[p ..< end])) else { return nil }
        let body = Array(command)
        guard let r = find(Array("\"request_id\":\"".utf8), in: body, from: 0),
              let rEnd = body[r...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        return String(decoding: body[r ..< rEnd], as: UTF8.self)
    }

    /// The index just after the first occurrence of `needle` in `hay` at or after `from`.
    static func find(_ needle: [UInt8], in hay: [UInt8], from: Int) -> Int? {
        guard needle.count <= hay.count else { return nil }
        var i = from
        while i + needle.count <= hay.count {
            if hay[i] == needle[0] && Array(hay[i ..< i + needle.count]) == needle { return i + needle.count }
            i += 1
        }
        return nil
    }
}

private func relay(_ ud: UnsafeMutableRawPointer?) -> RelayClient? {
    ud.map { Unmanaged<RelayClient>.fromOpaque($0).takeUnretainedValue() }
}

private let relayOnConnect: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32) -> Void = { m, ud, rc in
    guard rc == 0, let m else { return }
    relay(ud)?.connected(m)
}

private let relayOnSubscribe: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, Int32, Int32, UnsafePointer<Int32>?) -> Void = { _, ud, _, _, _ in
    relay(ud)?.subscribed()
}

private let relayOnMessage: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafePointer<mosquitto_message>?) -> Void = { m, ud, msg in
    guard let m, let msg, let payload = msg.pointee.payload else { return }
    relay(ud)?.received(m, UnsafeRawBufferPointer(start: payload, count: Int(msg.pointee.payloadlen)))
}
