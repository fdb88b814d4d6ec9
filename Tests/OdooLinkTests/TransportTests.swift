// OdooClient's HTTP transport (libcurl) against small hand-made HTTP peers: keep-alive, redirects, body cap,
// silent servers, cancellation, shutdown; and HTTPS trust with caFile.
import Foundation
import Testing
import TestSupport
@testable import OdooLink

/// A tiny HTTP/1.1 server in Python (one thread per connection) that logs `accept N` per TCP connection and
/// `request <request line>` / `header <name>: <value>` per request, `closed` when a client closes between requests. Modes:
/// `keepalive` answers every POST with a "recorded" JSON-RPC answer; `silent` reads the request and never answers;
/// `redirect` answers the usage-log POST with 302 to /followed (which would answer "recorded" and logs `followed`);
/// `size:N` answers 200 with a "recorded" JSON-RPC body of exactly N bytes.
let peerScript = #"""
import socket, sys, threading, time
mode = sys.argv[1]
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(16)
lock = threading.Lock()
def log(line):
    with lock:
        sys.stdout.write(line + "\n"); sys.stdout.flush()
log("peer listening on %d" % srv.getsockname()[1])
RECORDED = b'{"jsonrpc":"2.0","id":1,"result":{"status":"recorded","usage_log_id":7}}'
def answer(conn, status, body, extra=b""):
    conn.sendall(b"HTTP/1.1 " + status + b"\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n" + extra + b"\r\n" + body)
def handle(conn):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                log("closed"); return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        log("request " + lines[0])
        length = 0
        for h in lines[1:]:
            log("header " + h)
            name, _, value = h.partition(":")
            if name.strip().lower() == "content-length": length = int(value.strip())
        while len(buf) < length:
            data = conn.recv(65536)
            if not data: return
            buf += data
        buf = buf[length:]
        path = lines[0].split(" ")[1]
        if mode == "silent":
            time.sleep(3600)
        elif mode == "redirect" and path != "/followed":
            answer(conn, b"302 Found", b"{}", b"Location: /followed\r\n")
        elif mode == "redirect":
            log("followed"); answer(conn, b"200 OK", RECORDED)
        elif mode.startswith("size:"):
            size = int(mode[5:])
            answer(conn, b"200 OK", RECORDED + b" " * (size - len(RECORDED)))
        else:
            answer(conn, b"200 OK", RECORDED)
accepts = 0
while True:
    conn, _ = srv.accept()
    accepts += 1
    log("accept %d" % accepts)
    threading.Thread(target=handle, args=(conn,), daemon=True).start()
"""#

/// One running peer (stopped by PID in `stop()`).
final class HTTPPeer: Sendable {
    let process: ManagedProcess
    let port: Int
    var baseURL: String { "http://127.0.0.1:\(port)" }

    init(_ mode: String, in dir: TempDir) throws {
        let script = dir.path("peer.py")
        try peerScript.write(toFile: script, atomically: true, encoding: .utf8)
        process = try ManagedProcess("python3", [script, mode], name: "http-peer")
        let out = try process.waitForOutput(timeout: 20) { $0.contains("peer listening on ") }
        guard let line = out.split(separator: "\n").first(where: { $0.hasPrefix("peer listening on ") }),
              let port = Int(line.dropFirst("peer listening on ".count)) else {
            process.killHard()
            throw TestSupportError.processFailed("peer printed no port: \(out)")
        }
        self.port = port
    }

    func lines(_ prefix: String) -> [String] {
        process.output().split(separator: "\n").filter { $0.hasPrefix(prefix) }.map(String.init)
    }

    func stop() { process.stop() }
}

@Suite struct TransportTests {
    func client(_ baseURL: String, _ configure: (inout OdooConfiguration) -> Void = { _ in }) throws -> OdooClient {
        var c = OdooConfiguration(baseURL: baseURL, apiKey: "test-key")
        configure(&c)
        return try OdooClient(configuration: c)
    }

    @Test func sequentialSendsReuseOneConnection() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("keepalive", in: dir)
        defer { peer.stop() }
        let client = try client(peer.baseURL) { $0.database = "prod" }
        for rpcID in 1...3 {
            #expect(await client.send(sampleRecord(), rpcID: rpcID) == .recorded(usageLogID: 7))
        }
        try await client.shutdown()
        #expect(peer.lines("request ").count == 3)
        #expect(peer.lines("accept ") == ["accept 1"], "\(peer.process.output())")
        // HTTP/1.1, the contract's headers, no 100-continue handshake
        #expect(peer.lines("request ").allSatisfy { $0 == "request POST /api/subscription/usage_log HTTP/1.1" })
        let headers = Set(peer.lines("header ").map { $0.lowercased() })
        #expect(headers.contains("header content-type: application/json"))
        #expect(headers.contains("header accept: application/json"))
        #expect(headers.contains("header authorization: bearer test-key"))
        #expect(headers.contains("header x-odoo-database: prod"))
        #expect(!headers.contains { $0.hasPrefix("header expect:") })
    }

    @Test func redirectIsNotFollowed() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("redirect", in: dir)
        defer { peer.stop() }
        let client = try client(peer.baseURL)
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        try await client.shutdown()
        #expect(outcome == .transient(reason: "HTTP 302", retryAfter: nil))
        #expect(peer.lines("followed").isEmpty)
        #expect(peer.lines("request ").count == 1)
    }

    @Test(arguments: [OdooClient.maxResponseBytes, OdooClient.maxResponseBytes + 1])
    func responseBodyIsCapped(size: Int) async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("size:\(size)", in: dir)
        defer { peer.stop() }
        let client = try client(peer.baseURL)
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        if size <= OdooClient.maxResponseBytes {
            #expect(outcome == .recorded(usageLogID: 7))
        } else {
            #expect(outcome == .transient(reason: "response body larger than \(OdooClient.maxResponseBytes) bytes",
                                          retryAfter: nil))
        }
        // the client goes on working after an aborted answer
        #expect(await client.send(sampleRecord(), rpcID: 2).isSettled == (size <= OdooClient.maxResponseBytes))
        try await client.shutdown()
    }

    @Test func silentServerIsTransientAtTheTimeout() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("silent", in: dir)
        defer { peer.stop() }
        let client = try client(peer.baseURL) { $0.requestTimeout = 1 }
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        try await client.shutdown()
        #expect(outcome.isTransient, "\(outcome)")
        #expect(outcome.reasonText.contains("timed out"), "\(outcome)")
        #expect(peer.lines("request ").count == 1)
    }

    @Test func cancellationEndsTheRequest() async throws {
        // Generous waits: on a loaded 2-CPU machine the blocking helpers of other suites can hold the whole
        // cooperative pool for tens of seconds.
        try await withStandIn(configure: { $0.requestTimeout = 1800 }) { standIn, client in
            try standIn.faults(["latency_ms": 900_000, "count": 1])
            let task = Task { await client.send(sampleRecord(), rpcID: 1) }
            let started = try await eventuallyAsync(timeout: 300) { (try standIn.stats()["in_flight"] as? Int) == 1 }
            #expect(started)
            task.cancel()
            // Without a working cancellation this would wait for the 15 min answer and be `recorded`.
            let outcome = await task.value
            #expect(outcome == .transient(reason: "cancelled", retryAfter: nil))
            // The client keeps working (on another connection: the stand-in still sleeps on the first).
            #expect(await client.send(sampleRecord(), rpcID: 2) == .recorded(usageLogID: 1))
        }
    }

    @Test func sendsAfterShutdownAreTransient() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("keepalive", in: dir)
        defer { peer.stop() }
        let client = try client(peer.baseURL)
        #expect(await client.send(sampleRecord(), rpcID: 1) == .recorded(usageLogID: 7))
        try await client.shutdown()
        try await client.shutdown()   // twice is fine
        let outcome = await client.send(sampleRecord(), rpcID: 2)
        #expect(outcome.isTransient, "\(outcome)")
        #expect(peer.lines("request ").count == 1)
    }

    @Test func clientDroppedWithoutShutdownStopsQuietly() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("keepalive", in: dir)
        defer { peer.stop() }
        for rpcID in 1...3 {
            let client = try client(peer.baseURL)
            #expect(await client.send(sampleRecord(), rpcID: rpcID) == .recorded(usageLogID: 7))
        }
        // each dropped client's thread ended and closed its kept-alive connection
        let closed = try await eventuallyAsync(timeout: 20) { peer.lines("closed").count == 3 }
        #expect(closed, "\(peer.process.output())")
        #expect(peer.lines("accept ").count == 3)
    }

    @Test func headerInjectionThroughTheKeyIsRefused() async throws {
        let dir = try TempDir("odoo-peer")
        defer { dir.remove() }
        let peer = try HTTPPeer("keepalive", in: dir)
        defer { peer.stop() }
        var c = OdooConfiguration(baseURL: peer.baseURL, apiKey: "k\r\nX-Forged: 1")
        c.requestTimeout = 5
        let client = try OdooClient(configuration: c)
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        try await client.shutdown()
        #expect(outcome.isTransient, "\(outcome)")
        #expect(!outcome.reasonText.contains("Forged"))
        #expect(peer.lines("request ").isEmpty)
    }
}
