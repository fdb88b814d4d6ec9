// Framing: CRC-16/MODBUS and RTU frame parsing; MBAP over a real socket with a raw client.
import Foundation
@testable import SimulatorCore
import TestSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct RTUFramingTests {
    @Test func crcKnownVector() {
        // the classic example: read 10 holding registers from unit 1 → CRC bytes C5 CD
        #expect(ModbusCRC.rtuFrame(unit: 1, pdu: [0x03, 0x00, 0x00, 0x00, 0x0A]) == [1, 3, 0, 0, 0, 0x0A, 0xC5, 0xCD])
        #expect(ModbusCRC.crc16([UInt8]("123456789".utf8)) == 0x4B37)   // CRC-16/MODBUS check value
    }

    @Test func parsesByFunctionLengthAndCRC() {
        let read = ModbusCRC.rtuFrame(unit: 2, pdu: ModbusPDU.readInput(start: 0, count: 7))
        #expect(RTUFraming.parseRequest(read) == .frame(unit: 2, pdu: ModbusPDU.readInput(start: 0, count: 7), length: 8))
        #expect(RTUFraming.parseRequest(Array(read.prefix(5))) == .needMore)
        var bad = read
        bad[7] ^= 0x01
        #expect(RTUFraming.parseRequest(bad) == .invalid(skip: 1))
        let write = ModbusCRC.rtuFrame(unit: 1, pdu: ModbusPDU.writeMultiple(start: 1000, values: [1, 2, 3, 4]))
        #expect(write.count == 17)
        #expect(RTUFraming.parseRequest(Array(write.prefix(16))) == .needMore)
        #expect(RTUFraming.parseRequest(write + read) == .frame(unit: 1, pdu: Array(write[1..<15]), length: 17))
        // an unknown function code: the shortest prefix with a valid CRC
        let odd = ModbusCRC.rtuFrame(unit: 1, pdu: [0x41, 9, 9])
        #expect(RTUFraming.parseRequest(odd) == .frame(unit: 1, pdu: [0x41, 9, 9], length: 6))
        // garbage in front of a frame is skipped byte by byte
        var buffer: [UInt8] = [0xFF, 0x00, 0x13, 0x66, 0x42] + read
        var skipped = 0
        while case .invalid(let n) = RTUFraming.parseRequest(buffer) { buffer.removeFirst(n); skipped += n }
        #expect(skipped == 5)
        #expect(RTUFraming.parseRequest(buffer) == .frame(unit: 2, pdu: ModbusPDU.readInput(start: 0, count: 7), length: 8))
    }
}

/// A bare TCP client that speaks raw bytes.
final class RawTCPClient {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = UInt16(port).bigEndian
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else { throw EngineError(description: "connect failed") }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) {
        _ = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
    }

    /// Reads until `count` bytes arrived, the peer closed (returns what came, `closed` true) or `timeout`.
    func receive(_ count: Int, timeout: Double = 10) -> (bytes: [UInt8], closed: Bool) {
        var out: [UInt8] = []
        let deadline = Date().addingTimeInterval(timeout)
        var chunk = [UInt8](repeating: 0, count: 1024)
        while out.count < count && Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, count - out.count), 0) }
            if n <= 0 { return (out, true) }
            out += chunk[0..<n]
        }
        return (out, false)
    }

    static func mbap(tid: UInt16, unit: UInt8, pdu: [UInt8]) -> [UInt8] {
        let len = pdu.count + 1
        return [UInt8(tid >> 8), UInt8(tid & 0xFF), 0, 0, UInt8(len >> 8), UInt8(len & 0xFF), unit] + pdu
    }
}

@Suite(.serialized) struct ModbusTCPTests {
    let readMagic = ModbusPDU.readInput(start: 0, count: 1)

    @Test func mbapEchoesTransactionAndUnitAndPipelines() throws {
        let sim = pausedSimulator()
        defer { sim.stop() }
        let client = try RawTCPClient(port: try sim.startTCP())
        client.send(RawTCPClient.mbap(tid: 0x1234, unit: 1, pdu: readMagic)
                    + RawTCPClient.mbap(tid: 0x1235, unit: 1, pdu: ModbusPDU.readInput(start: 32, count: 1)))
        let r = client.receive(11 + 9)
        #expect(Array(r.bytes.prefix(11)) == [0x12, 0x34, 0, 0, 0, 5, 1, 0x04, 2, 0x4F, 0x56])
        #expect(Array(r.bytes.suffix(9)) == [0x12, 0x35, 0, 0, 0, 3, 1, 0x84, 2])
    }

    @Test func unknownUnitAndDroppedResponsesGetNothing() throws {
        let sim = pausedSimulator()
        defer { sim.stop() }
        let client = try RawTCPClient(port: try sim.startTCP())
        client.send(RawTCPClient.mbap(tid: 1, unit: 9, pdu: readMagic))
        try sim.inject(.dropResponses(count: 1))
        client.send(RawTCPClient.mbap(tid: 2, unit: 1, pdu: readMagic))
        client.send(RawTCPClient.mbap(tid: 3, unit: 2, pdu: ModbusPDU.readInput(start: 6, count: 1)))
        let r = client.receive(11)
        #expect(Array(r.bytes.prefix(7)) == [0, 3, 0, 0, 0, 5, 2])          // the first answer is to tid 3
        #expect(client.receive(1, timeout: 0.5).bytes.isEmpty)                 // and nothing else comes
    }

    @Test func garbageReplacesTheResponse() throws {
        let sim = pausedSimulator()
        defer { sim.stop() }
        let client = try RawTCPClient(port: try sim.startTCP())
        try sim.inject(.garbage(count: 1))
        client.send(RawTCPClient.mbap(tid: 7, unit: 1, pdu: readMagic))
        let r = client.receive(5)
        #expect(r.bytes.count == 5)
        #expect(r.bytes != [0, 7, 0, 0, 0])
    }

    @Test func rebootClosesConnectionsAndNotModbusHangsUp() throws {
        let sim = pausedSimulator()
        defer { sim.stop() }
        let port = try sim.startTCP()
        let client = try RawTCPClient(port: port)
        client.send(RawTCPClient.mbap(tid: 1, unit: 1, pdu: readMagic))
        #expect(client.receive(11).bytes.count == 11)
        sim.reboot()
        #expect(client.receive(1).closed)
        let other = try RawTCPClient(port: port)
        other.send(Array("GET / HTTP/1.0\r\n\r\n".utf8))
        #expect(other.receive(1).closed)
    }

    @Test func responseDelayOverTCP() throws {
        let sim = pausedSimulator()
        defer { sim.stop() }
        let client = try RawTCPClient(port: try sim.startTCP())
        try sim.inject(.responseDelay(milliseconds: 300))
        client.send(RawTCPClient.mbap(tid: 1, unit: 1, pdu: readMagic))
        // the delayed answer still arrives whole (no timing asserted)
        #expect(client.receive(11).bytes == [0, 1, 0, 0, 0, 5, 1, 0x04, 2, 0x4F, 0x56])
    }
}
