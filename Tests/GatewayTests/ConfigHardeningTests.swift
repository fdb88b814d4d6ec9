import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Configuration files that must be refused by `check-config` (and therefore by the unit's ExecStartPre and
/// `run`), quickly and with the key, instead of hanging or passing (issue 9 item 16).
@Suite(.serialized) struct ConfigHardeningTests {
    static let base = ConfigCheckTests.base

    static func check(_ yaml: String, in dir: TempDir? = nil, timeout: Double = 60) throws -> (status: Int32, output: String) {
        let d = try dir ?? TempDir("swapgate-cfg")
        defer { if dir == nil { d.remove() } }
        let path = d.path("swapgate.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try runCommand(try productPath("swapgate"), ["check-config", "-c", path], timeout: timeout)
    }

    /// ~1 KB that would expand to 10^9 nodes: refused as too large, by check-config and by run, within the
    /// command timeout (it hung before).
    @Test func anAliasBombIsRefusedNotExpanded() throws {
        var bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        let names = "abcdefghi".map(String.init)
        for (prev, name) in zip(names, names.dropFirst()) {
            bomb += "\(name): &\(name) [" + Array(repeating: "*\(prev)", count: 10).joined(separator: ", ") + "]\n"
        }
        // Under a real key, so that nothing but the expansion can be the problem.
        let yaml = Self.base.replacingOccurrences(of: "station: {id: TG-CFG-0001}", with: "station: {id: TG-CFG-0001, network_code: *i}")
            .replacingOccurrences(of: "abs: {allow_unsigned: true}", with: "abs: {allow_unsigned: true}\n" + "x-anchors:\n" + bomb.split(separator: "\n").map { "  " + $0 }.joined(separator: "\n"))
        #expect(yaml.utf8.count < 1200)
        let r = try Self.check(yaml, timeout: 60)
        #expect(r.status == 78, "\(r.output)")
        #expect(r.output.contains("alias bomb"), "\(r.output)")

        let dir = try TempDir("swapgate-cfg")
        defer { dir.remove() }
        try yaml.write(toFile: dir.path("bomb.yaml"), atomically: true, encoding: .utf8)
        let run = try runCommand(try productPath("swapgate"), ["run", "-c", dir.path("bomb.yaml")], timeout: 60)
        #expect(run.status == 78 && run.output.contains("alias bomb"), "\(run.output)")

        // The same bomb as a mapping key (hashed whole by the composer) is refused as well.
        let keyBomb = bomb + "? *i\n: 1\n"
        let k = try Self.check(keyBomb, timeout: 60)
        #expect(k.status == 78, "\(k.output)")
    }

    @Test func anchorsAndMergeKeysWithinReasonStillLoad() throws {
        let yaml = Self.base + """

        cabinet: &cab {port: 1502, retries: 2}
        mqtt: {port: 1884, keepalive: 40}
        """
        let r = try Self.check(yaml)
        #expect(r.status == 0, "\(r.output)")
    }

    @Test func filesThatCannotWorkAreRefused() throws {
        let dir = try TempDir("swapgate-cfg")
        defer { dir.remove() }
        let fifo = dir.path("mqtt.password")
        #expect(mkfifo(fifo, 0o600) == 0)
        try FileManager.default.createDirectory(atPath: dir.path("key-dir"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir.path("db-dir"), withIntermediateDirectories: true)
        let cases: [(String, String, String)] = [
            ("mqtt: {username: u, password_file: \(fifo)}", "mqtt.password_file", "FIFO"),
            ("odoo: {base_url: \"http://127.0.0.1:9\", api_key_file: \(dir.path("key-dir"))}", "odoo.api_key_file", "directory"),
            ("control: {technicians_file: \(dir.path("key-dir"))}", "control.technicians_file", "directory"),
        ]
        for (extra, key, why) in cases {
            let r = try Self.check(Self.base + "\n" + extra, in: dir, timeout: 30)
            #expect(r.status == 78 && r.output.contains(key) && r.output.contains(why), "\(extra): \(r.output)")
        }
        let db = Self.base.replacingOccurrences(of: "store: {path: /tmp/never-opened.sqlite}", with: "store: {path: \(dir.path("db-dir"))}")
        let r = try Self.check(db, in: dir)
        #expect(r.status == 78 && r.output.contains("store.path"), "\(r.output)")
        // The FIFO also stops `run` at once instead of blocking on its read.
        try (Self.base + "\nmqtt: {username: u, password_file: \(fifo)}").write(toFile: dir.path("run.yaml"), atomically: true, encoding: .utf8)
        let run = try runCommand(try productPath("swapgate"), ["run", "-c", dir.path("run.yaml")], timeout: 30)
        #expect(run.status == 78 && run.output.contains("mqtt.password_file"), "\(run.output)")
    }

    @Test(arguments: [
        ("\"TG\\0X\"", "control characters"),            // a NUL (YAML escape)
        ("\"TG\\rX\"", "control characters"),
        ("TG/X", "'/'"),
        ("TG+X", "'+'"),
        ("\"TG#X\"", "'#'"),
        ("\"TG X\"", "spaces"),
        ("\"TG-É\"", "ASCII"),
        (String(repeating: "A", count: 65), "longer than 64"),
        (String(repeating: "A", count: 10 << 20), "longer than 64"),
    ])
    func impossibleStationIDsAreRefused(id: String, why: String) throws {
        let r = try Self.check(Self.base.replacingOccurrences(of: "station: {id: TG-CFG-0001}", with: "station: {id: \(id)}"))
        #expect(r.status == 78, "\(r.output.prefix(300))")
        #expect(r.output.contains("station.id") && r.output.contains(why), "\(r.output.prefix(300))")
        #expect(r.output.utf8.count < 4096, "the id is not echoed whole")
    }

    @Test func aSixtyFourCharacterIDPasses() throws {
        let r = try Self.check(Self.base.replacingOccurrences(of: "TG-CFG-0001", with: String(repeating: "A", count: 64)))
        #expect(r.status == 0, "\(r.output)")
    }

    /// `run -c swapgate.yaml` from the file's folder, with relative store and socket paths: check-config and run
    /// agree (run failed at start: the directory of a bare name was "").
    @Test func aBareRelativeConfigNameRunsAsCheckConfigSaid() throws {
        let st = try Station(slots: 2)
        defer { st.stop() }
        var text = try String(contentsOfFile: st.configPath, encoding: .utf8)
        text = text.replacingOccurrences(of: "store: {path: \(st.storePath)}", with: "store: {path: data/station.sqlite}")
        text = text.replacingOccurrences(of: "socket: \(st.controlSocket)", with: "socket: control.sock")
        try text.write(toFile: st.configPath, atomically: true, encoding: .utf8)
        let cwd = URL(fileURLWithPath: st.dir.path("."))
        let check = try ManagedProcess(try productPath("swapgate"), ["check-config", "-c", "swapgate.yaml"], name: "check", currentDirectory: cwd)
        _ = try check.waitForOutput(timeout: 30) { $0.contains(": ok") || $0.contains("problem") }
        let g = try ManagedProcess(try productPath("swapgate"), ["run", "-c", "swapgate.yaml"], name: "swapgate", currentDirectory: cwd)
        st.gateway = g
        try g.waitForOutput(timeout: 60) { $0.contains("accepting commands") }
        #expect(FileManager.default.fileExists(atPath: st.dir.path("data/station.sqlite")))
        let s = try st.swapctl(["status"])
        #expect(s.status == 0, "\(s.output)")
    }
}
