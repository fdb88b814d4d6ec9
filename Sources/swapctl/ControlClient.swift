#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import ControlProtocol
import StationSupport

/// Talks to the running daemon over its control socket: one JSON line out, one JSON line back.
/// The daemon owns the bus, so everything a technician reads or does on a running station goes through here.
final class ControlClient {
    let path: String
    private var fd: Int32 = -1
    private var buffer: [UInt8] = []

    init(path: String, timeout: Double) throws {
        self.path = path
        guard let address = UnixSocketAddress(path: path) else { throw fail("socket path too long: \(path)", code: 1) }
        do { fd = try address.connectStream(timeout: timeout) } catch let e as SystemCallError {
            let hint = e.errno == EACCES ? " (are you in the swapgate group?)"
                : (e.errno == ENOENT || e.errno == ECONNREFUSED ? " (is swapgate running? `systemctl status swapgate`)" : "")
            throw fail("cannot reach the daemon at \(path): \(e.reason)\(hint)", code: ExitStatus.unreachable)
        }
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Sends a request and decodes the answer's data as `T`. A refusal becomes an error with its code.
    func call<T: Decodable>(_ request: ControlRequest, as: T.Type) throws -> T {
        let line = try roundTrip(request)
        let envelope: Envelope<T>
        do { envelope = try ControlJSON.decoder().decode(Envelope<T>.self, from: Data(line)) } catch {
            throw fail("unexpected answer from the daemon: \(error)", code: ExitStatus.dataError)
        }
        guard envelope.ok, let data = envelope.data else {
            let code = envelope.code ?? "failed"
            let exit: Int32
            switch code {
            case "bad_request": exit = 1
            case "unauthorized", "invalid_slot", "cabinet_refused", "not_found": exit = ExitStatus.refused
            case "cabinet_unreachable", "bus_error": exit = ExitStatus.unreachable
            default: exit = ExitStatus.dataError
            }
            throw fail("\(code): \(envelope.error ?? "refused")", code: exit)
        }
        return data
    }

    /// The raw answer line (for --json, printed as the daemon sent it).
    func roundTrip(_ request: ControlRequest) throws -> [UInt8] {
        var out = try ControlJSON.encoder().encode(request)
        out.append(UInt8(ascii: "\n"))
        do {
            try out.withUnsafeBytes { raw in
                var off = 0
                while off < raw.count {
                    off += try systemCall("write") { write(fd, raw.baseAddress! + off, raw.count - off) }
                }
            }
        } catch let e as SystemCallError {
            throw fail("lost the daemon while sending: \(e.reason)", code: ExitStatus.unreachable)
        }
        while true {
            if let nl = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(buffer[..<nl])
                buffer.removeFirst(nl + 1)
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n: Int
            do { n = try systemCall("read") { read(fd, &chunk, chunk.count) } } catch let e as SystemCallError {
                if e.errno == EAGAIN || e.errno == EWOULDBLOCK { throw fail("the daemon did not answer in time", code: ExitStatus.unreachable) }
                throw fail("lost the daemon while reading: \(e.reason)", code: ExitStatus.unreachable)
            }
            if n == 0 { throw fail("the daemon closed the connection", code: ExitStatus.unreachable) }
            buffer += chunk[..<n]
        }
    }

    struct Envelope<T: Decodable>: Decodable {
        let ok: Bool
        let code: String?
        let error: String?
        let data: T?
    }
}
