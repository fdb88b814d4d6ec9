import Foundation
import Testing
import TestSupport

/// Contract 1.1 "Large commands over a thin link", end to end: tools/abs_sign.py (Python) compresses and splits,
/// mosquitto_pub publishes, the real daemon verifies, inflates, stages and swaps in.
@Suite(.serialized) struct ThinEntitlementSyncTests {
    static let script = repoRoot.appendingPathComponent("tools/abs_sign.py").path
    static var topic: String { "cmd/V01/BSS/\(Station.id)/entitlements" }

    /// `abs_sign.py sign` of `body` (a file) with extra flags, into `out` (one envelope per line).
    static func sign(_ abs: ABS, body: String, flags: [String], out: String) throws {
        let s = try runCommand("/bin/sh", ["-c", "/usr/bin/python3 '\(script)' sign --key '\(abs.privateKey)' --kid '\(abs.kid)' "
                                            + flags.map { "'\($0)'" }.joined(separator: " ") + " --payload-file '\(body)' > '\(out)'"], timeout: 300)
        guard s.status == 0 else { throw TestSupportError.processFailed(s.output) }
    }

    static func publish(_ st: Station, line: String) throws {
        let file = st.dir.path("line-\(UUID().uuidString.prefix(8)).env")
        try line.write(toFile: file, atomically: true, encoding: .utf8)
        let r = try runCommand("mosquitto_pub", ["-h", "127.0.0.1", "-p", "\(st.broker.port)", "-q", "1", "-t", topic, "-f", file], timeout: 120)
        guard r.status == 0 else { throw TestSupportError.processFailed("mosquitto_pub: \(r.output)") }
    }

    static func replies(_ sub: MosquittoSubscriber, _ requestID: String) -> [[String: Any]] {
        payloads(in: sub.lines(), topicSuffix: "/reply").filter { $0["request_id"] as? String == requestID }
    }

    static func waitReply(_ sub: MosquittoSubscriber, _ requestID: String, count: Int = 1) throws -> [String: Any] {
        guard eventually(timeout: 300, interval: 0.1, { replies(sub, requestID).count >= count }) else {
            throw TestSupportError.timeout("no reply to \(requestID)")
        }
        return replies(sub, requestID)[count - 1]
    }

    static func requestID(ofEnvelope line: String) throws -> String {
        let env = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])
        let compressed = try #require(Data(base64Encoded: env["payload"] ?? ""))
        let script = "import sys,zlib,json; print(json.loads(zlib.decompress(sys.stdin.buffer.read(), -15))['request_id'])"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", script]
        let inPipe = Pipe(), outPipe = Pipe()
        p.standardInput = inPipe; p.standardOutput = outPipe
        try p.run()
        inPipe.fileHandleForWriting.write(compressed); try inPipe.fileHandleForWriting.close()
        let out = outPipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    static func statusKiB(_ pid: Int32, _ key: String) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return -1 }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? -1
        }
        return -1
    }

    @Test func compressedSnapshotAndDeltaApply() throws {
        let abs = try ABS.generate()
        let st = try Station(slots: 4, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        let snapshot: [String: Any] = ["request_id": "z-snap", "kind": "snapshot", "version": 10, "counted_through_seq": 0,
                                       "entitlements": (1...50).map { SwapTests.entitlement($0, out: []) }]
        let body = st.dir.path("snap.json")
        try JSONSerialization.data(withJSONObject: snapshot, options: [.sortedKeys]).write(to: URL(fileURLWithPath: body))
        try Self.sign(abs, body: body, flags: ["--stamp", "600", "--deflate"], out: st.dir.path("snap.env"))
        let line = try String(contentsOfFile: st.dir.path("snap.env"), encoding: .utf8)
        #expect(line.contains("\"enc\":\"deflate\""))
        try Self.publish(st, line: line)
        let reply = try Self.waitReply(sub, "z-snap")
        #expect(reply["ok"] as? Bool == true, "\(reply)")

        var entry = SwapTests.entitlement(7, out: [], used: 30)
        entry["version"] = 2
        let delta: [String: Any] = ["request_id": "z-delta", "kind": "delta", "base_version": 10, "version": 11,
                                    "upsert": [entry], "remove": ["pi-8"]]
        try JSONSerialization.data(withJSONObject: delta, options: [.sortedKeys]).write(to: URL(fileURLWithPath: body))
        try Self.sign(abs, body: body, flags: ["--stamp", "600", "--deflate"], out: st.dir.path("delta.env"))
        try Self.publish(st, line: try String(contentsOfFile: st.dir.path("delta.env"), encoding: .utf8))
        let deltaReply = try Self.waitReply(sub, "z-delta")
        #expect(deltaReply["ok"] as? Bool == true, "\(deltaReply)")

        let seven = try #require(try st.swapctlJSON(["entitlements", "cust-7"]) as? [String: Any])
        #expect((seven["entitlements"] as? [[String: Any]])?.first?["swaps_used"] as? Int == 30, "\(seven)")
        let cache = try #require(seven["cache"] as? [String: Any])
        #expect(cache["version"] as? Int == 11 && cache["count"] as? Int == 49, "\(cache)")

        // A compressed payload with an unknown enc, and a bomb: malformed, the cache untouched.
        let bomb = st.dir.path("bomb.json")
        let gen = "import zlib; c=zlib.compressobj(9, zlib.DEFLATED, -15); z=bytes(1<<20); "
            + "open('\(bomb)','wb').write(b''.join(c.compress(z) for _ in range(256))+c.flush())"
        #expect(try runCommand("/usr/bin/python3", ["-c", gen], timeout: 120).status == 0)
        // Signed over the compressed bytes as they are (no --deflate: the file already is DEFLATE), enc added by hand.
        try Self.sign(abs, body: bomb, flags: ["--no-check"], out: st.dir.path("bomb.env"))
        var env = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: st.dir.path("bomb.env")))) as? [String: String])
        env["enc"] = "deflate"
        let before = payloads(in: sub.lines(), topicSuffix: "/reply").count
        try Self.publish(st, line: String(decoding: try JSONSerialization.data(withJSONObject: env), as: UTF8.self))
        #expect(eventually(timeout: 60) { payloads(in: sub.lines(), topicSuffix: "/reply").count > before })
        let refusal = payloads(in: sub.lines(), topicSuffix: "/reply").last
        #expect(refusal?["code"] as? String == "malformed", "\(String(describing: refusal))")
        #expect((refusal?["message"] as? String)?.contains("beyond") == true, "\(String(describing: refusal))")
    }

    /// A 100 000-entitlement snapshot in 20 compressed parts: reordered, duplicated (an exact copy → replayed; the
    /// same part re-signed → ok, changes nothing), the daemon SIGKILLed between parts, one part held back (the old
    /// cache keeps answering), then sent: the whole snapshot swaps in.
    @Test func hundredThousandInPartsWithKillsAndAMissingPart() throws {
        let abs = try ABS.generate()
        let st = try Station(slots: 4, absSection: "abs: {public_keys: {\(abs.kid): \"\(abs.publicKey)\"}}")
        defer { st.stop() }
        let sub = try st.subscriber()
        try st.startGateway()
        let old = try st.command("entitlements", ["kind": "snapshot", "version": 1, "entitlements": [
            SwapTests.entitlement(1, out: []), SwapTests.entitlement(2, out: []), SwapTests.entitlement(3, out: []),
        ]], abs: abs, subscriber: sub)
        #expect(old["ok"] as? Bool == true, "\(old)")

        // The snapshot body (≈ 40 MB of JSON) by Python, as in SnapshotCrashTests; then a copy with another request_id.
        let count = SnapshotCrashTests.count
        let plainEnvelope = try SnapshotCrashTests.envelopeFile(st, abs: abs, version: 2)
        let body = st.dir.path("snapshot-2.json")
        let bodyB = st.dir.path("snapshot-2b.json")
        #expect(try runCommand("/bin/sh", ["-c", "sed 's/\"request_id\":\"snap-2\"/\"request_id\":\"snap-2b\"/' '\(body)' > '\(bodyB)'"]).status == 0)
        let partsFile = st.dir.path("parts.env"), partsFileB = st.dir.path("parts-b.env")
        try Self.sign(abs, body: body, flags: ["--deflate", "--parts", "20", "--snapshot-id", "city-2"], out: partsFile)
        try Self.sign(abs, body: bodyB, flags: ["--deflate", "--parts", "20", "--snapshot-id", "city-2"], out: partsFileB)
        let lines = try String(contentsOfFile: partsFile, encoding: .utf8).split(separator: "\n").map(String.init)
        let linesB = try String(contentsOfFile: partsFileB, encoding: .utf8).split(separator: "\n").map(String.init)
        #expect(lines.count == 20 && linesB.count == 20)
        let wire = lines.reduce(0) { $0 + $1.utf8.count }
        let plainWire = (try FileManager.default.attributesOfItem(atPath: plainEnvelope)[.size] as? NSNumber)?.intValue ?? -1
        func rid(_ part: Int) -> String { "snap-2-p\(part)" }

        guard let pid0 = st.gateway?.pid else { return }
        let steadyRSS = Self.statusKiB(pid0, "VmRSS")

        // Parts 20…11, newest first; then the daemon is killed and started again.
        for part in (11...20).reversed() { try Self.publish(st, line: lines[part - 1]) }
        for part in 11...20 {
            let r = try Self.waitReply(sub, rid(part))
            #expect(r["ok"] as? Bool == true, "\(r)")
        }
        let tenth = try #require((Self.replies(sub, rid(11)).first?["data"] as? [String: Any]))
        #expect(tenth["parts_missing"] as? Int == 10, "\(tenth)")
        st.gateway?.killHard()
        try st.startGateway()

        // Parts 1…10 but 7, shuffled; part 3 twice as is (replayed), part 5 re-signed (ok, already staged).
        var order = [1, 2, 3, 4, 5, 6, 8, 9, 10]
        order.shuffle()
        for part in order { try Self.publish(st, line: lines[part - 1]) }
        try Self.publish(st, line: lines[2])
        try Self.publish(st, line: linesB[4])
        for part in order { #expect(try Self.waitReply(sub, rid(part))["ok"] as? Bool == true) }
        let replayed = try Self.waitReply(sub, rid(3), count: 2)
        #expect(replayed["code"] as? String == "replayed", "\(replayed)")
        let dup = try Self.waitReply(sub, "snap-2b-p5")
        #expect(dup["ok"] as? Bool == true, "\(dup)")
        let dupData = try #require(dup["data"] as? [String: Any])
        #expect(dupData["parts_missing"] as? Int == 1 && (dupData["first_missing"] as? [Int]) == [7], "\(dupData)")

        // Part 7 is missing: the old cache still decides.
        let waiting = try #require(try st.swapctlJSON(["entitlements", "cust-2"]) as? [String: Any])
        #expect((waiting["cache"] as? [String: Any])?["count"] as? Int == 3, "\(waiting)")
        #expect((waiting["entitlements"] as? [[String: Any]])?.count == 1)
        let absent = try #require(try st.swapctlJSON(["entitlements", "cust-77777"]) as? [String: Any])
        #expect((absent["entitlements"] as? [[String: Any]])?.isEmpty != false, "\(absent)")

        // Part 7: the whole snapshot swaps in.
        guard let pid = st.gateway?.pid else { return }
        let rssBefore = Self.statusKiB(pid, "VmRSS")
        let hwmBefore = Self.statusKiB(pid, "VmHWM")
        try Self.publish(st, line: lines[6])
        let done = try Self.waitReply(sub, rid(7))
        #expect(done["ok"] as? Bool == true, "\(done)")
        let doneData = try #require(done["data"] as? [String: Any])
        #expect(doneData["count"] as? Int == count && doneData["parts_missing"] as? Int == 0, "\(doneData)")
        let hwmAfter = Self.statusKiB(pid, "VmHWM")
        let found = try #require(try st.swapctlJSON(["entitlements", "cust-77777"]) as? [String: Any])
        #expect((found["cache"] as? [String: Any])?["count"] as? Int == count, "\(found)")
        #expect((found["entitlements"] as? [[String: Any]])?.first?["version"] as? Int == 2)
        #expect(try st.swapctlJSON(["entitlements", "cust-1"]) is [String: Any])

        print("""
        ThinEntitlementSync: 100k snapshot on the wire: \(plainWire) bytes plain (one message) vs \(wire) bytes deflated in 20 parts \
        (\(String(format: "%.1f", Double(plainWire) / Double(max(wire, 1))))× less, largest part \(lines.map(\.utf8.count).max() ?? 0) bytes)
        ThinEntitlementSync: daemon VmRSS steady \(steadyRSS / 1024) MiB (first start), \(rssBefore / 1024) MiB before the last part; \
        VmHWM \(hwmBefore / 1024) MiB before it (staging 19 parts, one restart), \(hwmAfter / 1024) MiB after the swap-in \
        (peak/steady \(String(format: "%.2f", Double(hwmAfter) / Double(max(rssBefore, 1)))))
        """)
    }
}
