import ABSProtocol
import Foundation
import StationDomain
import Testing
import TestSupport

/// `enc: deflate` envelopes and snapshots in parts (abs-mqtt.md contract 1.1, "Large commands over a thin
/// link"). The compressed bytes come from Python's zlib (compressobj, wbits=-15): no Swift on that side.
@Suite struct DeflateTests {
    let key = ABSKey()

    /// Raw DEFLATE of `data` by Python's zlib (an outside implementation).
    static func pythonDeflate(_ data: [UInt8]) throws -> [UInt8] {
        let script = "import sys,zlib,base64; c=zlib.compressobj(9, zlib.DEFLATED, -15); d=base64.b64decode(sys.stdin.read()); "
            + "sys.stdout.write(base64.b64encode(c.compress(d)+c.flush()).decode())"
        let (status, out) = try runCommand("/usr/bin/python3", ["-c", script], timeout: 60, input: Data(data).base64EncodedString())
        #expect(status == 0, "python: \(out)")
        return Array(try #require(Data(base64Encoded: out.trimmingCharacters(in: .whitespacesAndNewlines))))
    }

    /// An envelope with `enc` over `payload` (the compressed bytes), signed over exactly those bytes.
    func envelope(_ payload: [UInt8], enc: String? = "deflate", sigOver: [UInt8]? = nil) throws -> [UInt8] {
        let sig = try key.privateKey.signature(for: sigOver ?? payload).base64EncodedString()
        var fields = ["\"kid\":\(jsonString(key.kid))", "\"payload\":\"\(Data(payload).base64EncodedString())\"", "\"sig\":\"\(sig)\""]
        if let enc { fields.append("\"enc\":\(jsonString(enc))") }
        return Array("{\(fields.joined(separator: ","))}".utf8)
    }

    func verify(_ envelope: [UInt8], policy: CommandPolicy = CommandPolicy()) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier(policy).verify(command: "entitlements", payload: envelope, retained: false, now: testNow)
    }

    func snapshotCommand(_ n: Int, extra: [String: Any] = [:]) -> [UInt8] {
        json(merged(merged(header(), ["kind": "snapshot", "version": 7, "counted_through_seq": 3,
                                      "entitlements": (1...n).map { record($0) }]), extra))
    }

    @Test func deflateRoundTripFromPythonZlib() throws {
        let plain = snapshotCommand(500)
        let compressed = try Self.pythonDeflate(plain)
        #expect(compressed.count * 5 < plain.count, "\(compressed.count) of \(plain.count)")
        let result = try verify(try envelope(compressed))
        guard case .entitlementSnapshot(let version, let list, let counted)? = result.command?.body else {
            Issue.record("not a snapshot: \(String(describing: result.refusal))"); return
        }
        #expect(version == 7 && counted == 3 && list.count == 500)
        #expect(list[41].planInstanceID == "pi-000042")
        // The same command sent plain gives the same body.
        #expect(try verify(try key.envelope(plain)).command?.body == result.command?.body)
        print("DeflateTests: 500-record snapshot \(plain.count) bytes, deflated \(compressed.count)")
    }

    @Test func signatureIsOverTheCompressedBytes() throws {
        let plain = snapshotCommand(3)
        let compressed = try Self.pythonDeflate(plain)
        // Signed over the inflated JSON instead: refused.
        expectRefused(try verify(try envelope(compressed, sigOver: plain)), .badSignature)
        // One compressed byte changed, signature of the original: bad_signature (checked before inflating).
        for index in [0, compressed.count / 2, compressed.count - 1] {
            var tampered = compressed
            tampered[index] ^= 0x01
            expectRefused(try verify(try envelope(tampered, sigOver: compressed)), .badSignature)
        }
        // Signed tampered data that is not DEFLATE any more: malformed, not a crash.
        var broken = compressed
        broken[0] = 0xFF
        expectRefused(try verify(try envelope(broken)), .malformed, mentioning: "DEFLATE")
        // Cut short, and bytes after the end of the stream.
        expectRefused(try verify(try envelope(Array(compressed.dropLast(5)))), .malformed, mentioning: "cut short")
        expectRefused(try verify(try envelope(compressed + [0x00, 0x01])), .malformed, mentioning: "follow the end")
    }

    @Test func unknownOrBadEncIsMalformed() throws {
        let plain = snapshotCommand(1)
        expectRefused(try verify(try envelope(plain, enc: "gzip")), .malformed, mentioning: "unknown enc", "gzip")
        expectRefused(try verify(try envelope(plain, enc: "")), .malformed, mentioning: "unknown enc")
        expectRefused(try verify(try envelope(plain, enc: "identity")), .malformed, mentioning: "unknown enc")
        let sig = try key.privateKey.signature(for: plain).base64EncodedString()
        let numeric = "{\"kid\":\"\(key.kid)\",\"enc\":1,\"payload\":\"\(Data(plain).base64EncodedString())\",\"sig\":\"\(sig)\"}"
        expectRefused(try verify(Array(numeric.utf8)), .malformed, mentioning: "enc")
        let twice = "{\"kid\":\"\(key.kid)\",\"enc\":\"deflate\",\"enc\":\"deflate\",\"payload\":\"\",\"sig\":\"\(sig)\"}"
        expectRefused(try verify(Array(twice.utf8)), .malformed, mentioning: "enc", "twice")
        // Plain JSON declared deflate: not DEFLATE data.
        expectRefused(try verify(try envelope(plain)), .malformed)
        // No enc: as before.
        #expect(try verify(try envelope(plain, enc: nil)).command != nil)
    }

    @Test func inflatedSizeLimit() throws {
        let plain = snapshotCommand(200)
        let compressed = try Self.pythonDeflate(plain)
        var policy = CommandPolicy()
        policy.maxInflatedBytes = plain.count
        #expect(try verify(try envelope(compressed), policy: policy).command != nil)
        policy.maxInflatedBytes = plain.count - 1
        expectRefused(try verify(try envelope(compressed), policy: policy), .malformed, mentioning: "beyond", "\(plain.count - 1)")
    }

    /// 1 GiB of zeros, about 1 MB compressed: refused malformed once the (default 64 MiB) limit is passed,
    /// without ever holding the gigabyte.
    @Test func inflateBombRefused() throws {
        let script = "import sys,zlib,base64; c=zlib.compressobj(9, zlib.DEFLATED, -15); z=bytes(1<<20); "
            + "out=b''.join(c.compress(z) for _ in range(1024))+c.flush(); sys.stdout.write(base64.b64encode(out).decode())"
        let (status, out) = try runCommand("/usr/bin/python3", ["-c", script], timeout: 300)
        #expect(status == 0)
        let bomb = Array(try #require(Data(base64Encoded: out.trimmingCharacters(in: .whitespacesAndNewlines))))
        let before = Self.vmHWMKiB()
        let started = Date()
        let result = try verify(try envelope(bomb))
        let elapsed = Date().timeIntervalSince(started)
        let after = Self.vmHWMKiB()
        expectRefused(result, .malformed, mentioning: "beyond", "\(64 * 1024 * 1024)")
        print("DeflateTests: bomb of \(bomb.count) bytes (1 GiB inflated) refused in \(String(format: "%.2f", elapsed)) s; "
              + "test process VmHWM \(before / 1024) → \(after / 1024) MiB")
        // The limit is 64 MiB: a peak that grew by the bomb's gigabyte would show here.
        #expect(after - before < 512 * 1024, "VmHWM grew by \((after - before) / 1024) MiB")
    }

    static func vmHWMKiB() -> Int {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "0") ?? 0
        }
        return 0
    }

    // MARK: Snapshot parts

    func part(_ extra: [String: Any], records: [[String: Any]] = [record(1)]) throws -> Result<VerifiedCommand, CommandRefusal> {
        try verify(try key.envelope(json(merged(merged(header(), ["kind": "snapshot", "version": 9, "entitlements": records]), extra))))
    }

    @Test func snapshotPartDecodes() throws {
        let result = try part(["snapshot_id": "snap-1", "part": 2, "parts": 3, "counted_through_seq": 40], records: [record(5), record(6)])
        guard case .entitlementSnapshotPart(let p)? = result.command?.body else {
            Issue.record("not a part: \(String(describing: result.refusal))"); return
        }
        #expect(p.snapshotID == "snap-1" && p.part == 2 && p.parts == 3 && p.version == 9 && p.countedThroughSeq == 40)
        #expect(p.entitlements.map(\.planInstanceID) == ["pi-000005", "pi-000006"])
        // An empty slice is a valid part.
        #expect(try part(["snapshot_id": "s", "part": 1, "parts": 1], records: []).command != nil)
    }

    @Test func snapshotPartFieldsChecked() throws {
        expectRefused(try part(["snapshot_id": "s", "part": 1]), .malformed, mentioning: "missing parts")
        expectRefused(try part(["snapshot_id": "s", "parts": 2]), .malformed, mentioning: "missing part")
        expectRefused(try part(["part": 1, "parts": 2]), .malformed, mentioning: "missing snapshot_id")
        expectRefused(try part(["snapshot_id": "s", "part": 3, "parts": 2]), .malformed, mentioning: "part 3")
        expectRefused(try part(["snapshot_id": "s", "part": 0, "parts": 2]), .malformed, mentioning: "part 0")
        expectRefused(try part(["snapshot_id": "s", "part": 1, "parts": 0]), .malformed, mentioning: "parts 0")
        expectRefused(try part(["snapshot_id": "s", "part": 1, "parts": CommandLimits.maxSnapshotParts + 1]), .malformed, mentioning: "parts")
        expectRefused(try part(["snapshot_id": "", "part": 1, "parts": 1]), .malformed, mentioning: "snapshot_id")
        expectRefused(try part(["snapshot_id": 5, "part": 1, "parts": 1]), .malformed, mentioning: "snapshot_id")
        expectRefused(try part(["snapshot_id": "s", "part": "1", "parts": 1]), .malformed, mentioning: "part must be")
        // Duplicates inside one part: as for a whole snapshot.
        expectRefused(try part(["snapshot_id": "s", "part": 1, "parts": 1], records: [record(1), record(1)]), .malformed, mentioning: "duplicates")
        // A delta carries no part fields.
        let delta = json(merged(header(), ["kind": "delta", "base_version": 1, "version": 2, "upsert": [], "remove": [],
                                           "snapshot_id": "s"]))
        expectRefused(try verify(try key.envelope(delta)), .malformed, mentioning: "snapshot_id")
    }

    /// abs_sign.py --deflate --parts: every line is a signed, compressed part that verifies here, and the
    /// parts together carry the snapshot's records in order.
    @Test func absSignSplitsAndCompresses() throws {
        let dir = try TempDir("abs-sign-parts")
        defer { dir.remove() }
        let keyFile = dir.path("key")
        try Data(key.privateKey.rawRepresentation.base64EncodedString().utf8).write(to: URL(fileURLWithPath: keyFile))
        let command = json(merged(header("r-parts"), ["kind": "snapshot", "version": 11, "counted_through_seq": 5,
                                                      "entitlements": (1...10).map { record($0) }]))
        let script = packageRoot.appendingPathComponent("tools/abs_sign.py").path
        for (flags, expectedParts) in [(["--parts", "3"], 3), (["--part-size", "4"], 3), (["--parts", "1"], 1)] {
            let (status, out) = try runCommand("/usr/bin/python3", [script, "sign", "--key-file", keyFile, "--kid", key.kid,
                                                                     "--deflate", "--snapshot-id", "snap-py"] + flags,
                                               timeout: 60, input: String(decoding: command, as: UTF8.self))
            #expect(status == 0, "\(out)")
            let lines = out.split(separator: "\n").map(String.init)
            #expect(lines.count == expectedParts, "\(flags)")
            var ids: [String] = []
            var requestIDs = Set<String>()
            for (i, line) in lines.enumerated() {
                #expect(line.contains("\"enc\":\"deflate\""))
                let result = try verify(Array(line.utf8))
                guard case .entitlementSnapshotPart(let p)? = result.command?.body else {
                    Issue.record("line \(i): \(String(describing: result.refusal))"); continue
                }
                #expect(p.snapshotID == "snap-py" && p.part == i + 1 && p.parts == expectedParts && p.version == 11 && p.countedThroughSeq == 5)
                ids += p.entitlements.map(\.planInstanceID)
                requestIDs.insert(result.command!.header.requestID)
            }
            #expect(ids == (1...10).map { String(format: "pi-%06d", $0) }, "\(flags)")
            #expect(requestIDs.count == expectedParts)
        }
        // Without --parts, --deflate alone: one compressed whole snapshot.
        let (status, out) = try runCommand("/usr/bin/python3", [script, "sign", "--key-file", keyFile, "--kid", key.kid, "--deflate"],
                                           timeout: 60, input: String(decoding: command, as: UTF8.self))
        #expect(status == 0)
        guard case .entitlementSnapshot(11, let list, 5)? = try verify(Array(out.trimmingCharacters(in: .whitespacesAndNewlines).utf8)).command?.body else {
            Issue.record("not a whole snapshot: \(out)"); return
        }
        #expect(list.count == 10)
    }
}
