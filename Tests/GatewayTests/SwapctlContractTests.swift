import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// swapctl's promises in docs/technician.md and docs/control-api.md, through the real daemon and binary
/// (issue 9 items 19 and 7): exit codes, `--socket` before the subcommand, RFC 3339 dates everywhere.
@Suite(.serialized) struct SwapctlContractTests {
    @Test func exitCodesAreTheDocumentedOnes() throws {
        let swapctl = try productPath("swapctl")
        // Usage errors: 1 (ArgumentParser's own default is 64).
        for args in [["bogus"], ["read", "--count", "2"], ["bms", "three"], ["status", "--timeout", "soon"]] {
            let r = try runCommand(swapctl, args)
            #expect(r.status == 1, "\(args): \(r.status) \(r.output)")
        }
        #expect(try runCommand(swapctl, ["--help"]).status == 0)
        // No daemon: 2, whichever side of the subcommand --socket is on.
        let before = try runCommand(swapctl, ["--socket", "/nonexistent/swapgate.sock", "status"])
        #expect(before.status == 2 && before.output.contains("/nonexistent/swapgate.sock"), "\(before)")
        let after = try runCommand(swapctl, ["status", "--socket=/nonexistent/other.sock"])
        #expect(after.status == 2 && after.output.contains("/nonexistent/other.sock"), "\(after)")

        let st = try Station(slots: 4)
        defer { st.stop() }
        try st.startGateway()
        // --socket before the subcommand reaches the daemon.
        let status = try runCommand(swapctl, ["--socket", st.controlSocket, "status"])
        #expect(status.status == 0 && status.output.contains(Station.id), "\(status)")
        let eq = try runCommand(swapctl, ["--socket=\(st.controlSocket)", "queues", "--json"])
        #expect(eq.status == 0, "\(eq)")
        // bad_request (an out-of-range read): 1, a usage error; not bus_error.
        let tooMany = try st.swapctl(["read", "--address", "0", "--count", "200"])
        #expect(tooMany.status == 1 && tooMany.output.contains("bad_request"), "\(tooMany)")
        let pastEnd = try st.swapctl(["read", "--address", "65535", "--count", "2"])
        #expect(pastEnd.status == 1 && pastEnd.output.contains("bad_request"), "\(pastEnd)")
        // Refused: 4.
        let slot = try st.swapctl(["bms", "99"])
        #expect(slot.status == 4 && slot.output.contains("invalid_slot"), "\(slot)")
        let resend = try st.swapctl(["usage", "resend", "no-such-key"])
        #expect(resend.status == 4 && resend.output.contains("not_found"), "\(resend)")
        let unauthorized = try runCommand(swapctl, ["unlock", "1", "--technician", "mallory", "--reason", "x", "--socket", st.controlSocket])
        #expect(unauthorized.status == 1 || unauthorized.status == 4, "\(unauthorized)")   // no credential on a pipe: 1
    }

    static let rfc3339 = try! NSRegularExpression(pattern: #"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"#)
    static func isRFC3339(_ v: Any?) -> Bool {
        guard let s = v as? String else { return false }
        return rfc3339.firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }

    /// One raw answer line from the daemon (what any client gets), as JSON.
    static func raw(_ st: Station, _ request: String) throws -> [String: Any] {
        let fd = try unixConnect(st.controlSocket)
        defer { close(fd) }
        sendAll(fd, Array(request.utf8) + [10])
        var tv = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while !out.contains(10) {
            let n = read(fd, &buf, buf.count)
            if n <= 0 { break }
            out += buf[..<n]
        }
        return try #require(try JSONSerialization.jsonObject(with: Data(out)) as? [String: Any])
    }

    /// Nested dates (a usage record's occurredAt, an entitlement's validity) are RFC 3339 strings like the
    /// views' own, in the daemon's answers and in `swapctl --json`.
    @Test func everyDateInTheControlAPIIsRFC3339() async throws {
        let abs = try ABS.generate()
        let (st, sub) = try CustodyTests.station(abs)
        defer { st.stop() }
        let reply = try st.command("entitlements", ["kind": "snapshot", "version": 1,
                                                    "entitlements": [SwapTests.entitlement(1, out: ["B45-RIDER-01"], used: 0, quota: 5)]],
                                   abs: abs, subscriber: sub)
        #expect(reply["ok"] as? Bool == true, "\(reply)")
        let swap = try st.command("swap", ["customer_id": "cust-1"], abs: abs, subscriber: sub)
        #expect(swap["ok"] as? Bool == true, "\(swap)")
        #expect(eventually(timeout: 60) { events(in: sub.lines()).contains { $0.type == "swap.completed" } })

        let ent = try Self.raw(st, #"{"op":"entitlements","customerID":"cust-1"}"#)
        let e = try #require(((ent["data"] as? [String: Any])?["entitlements"] as? [[String: Any]])?.first, "\(ent)")
        #expect(Self.isRFC3339(e["valid_from"]) && Self.isRFC3339(e["valid_until"]), "\(e)")

        var usage: [[String: Any]] = []
        #expect(eventually(timeout: 30) {
            usage = ((try? Self.raw(st, #"{"op":"usage"}"#))?["data"] as? [[String: Any]]) ?? []
            return !usage.isEmpty
        })
        let u = try #require(usage.first)
        #expect(Self.isRFC3339(u["occurredAt"]), "\(u)")
        #expect(Self.isRFC3339((u["record"] as? [String: Any])?["occurredAt"]), "\(u)")

        let evts = try #require(try Self.raw(st, #"{"op":"events","limit":5}"#)["data"] as? [[String: Any]])
        #expect(!evts.isEmpty && evts.allSatisfy { Self.isRFC3339($0["timestamp"]) })
        let audit = try #require(try Self.raw(st, #"{"op":"audit","limit":5}"#)["data"] as? [[String: Any]])
        #expect(!audit.isEmpty && audit.allSatisfy { Self.isRFC3339($0["timestamp"]) })

        // swapctl decodes them with the same strategy and prints them the same way.
        let listed = try #require(try st.swapctlJSON(["usage", "list"]) as? [[String: Any]])
        #expect(Self.isRFC3339((listed.first?["record"] as? [String: Any])?["occurredAt"]), "\(listed)")
        let shown = try #require(try st.swapctlJSON(["entitlements", "cust-1"]) as? [String: Any])
        let se = try #require((shown["entitlements"] as? [[String: Any]])?.first)
        #expect(Self.isRFC3339(se["valid_until"]), "\(se)")
        let table = try st.swapctl(["usage", "list"])
        #expect(table.status == 0, "\(table)")
    }
}
