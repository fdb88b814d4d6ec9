import Foundation
import Testing
import TestSupport

/// `swapgate check-config` (and `swapgate run`) on files with each kind of error: every problem is reported
/// with its key, the exit status is 78 (EX_CONFIG), and a good file passes.
@Suite struct ConfigCheckTests {
    static let base = """
    station: {id: TG-CFG-0001}
    abs: {allow_unsigned: true}
    store: {path: /tmp/never-opened.sqlite}
    """

    static func check(_ yaml: String) throws -> (status: Int32, output: String) {
        let dir = try TempDir("swapgate-cfg")
        defer { dir.remove() }
        let path = dir.path("swapgate.yaml")
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        return try runCommand(try productPath("swapgate"), ["check-config", "-c", path])
    }

    @Test(arguments: [
        ("station: [unclosed", "not valid YAML"),
        ("cabinet: {prot: 502}", "cabinet.prot"),                                      // misspelt key
        ("cabinet: {port: 70000}", "cabinet.port"),                                    // out of range
        ("mqtt: {keepalive: soon}", "mqtt.keepalive"),                                 // wrong type
        ("cabinet: {transport: udp}", "cabinet.transport"),                            // not one of the choices
        ("mqtt: {ca_file: /nonexistent/ca.pem}", "mqtt.ca_file"),                      // unreadable file
        ("metrics: {host: 0.0.0.0}", "metrics.host"),                                  // not loopback
        ("cabinet: {fast_interval: 3, watchdog_interval: 2}", "cabinet.fast_interval"), // keys that contradict
        ("odoo: {base_url: \"https://erp.example.com\"}", "odoo.api_key_file"),        // secret missing
        ("control: {technicians_file: /nonexistent/technicians}", "control.technicians_file"),
        ("odoo: {base_url: \"https://erp.example.com\", api_key_file: /nonexistent/key}", "odoo.api_key_file"), // unreadable secret
        ("abs: {public_keys: {abs-1: \"BASE64-OF-32-BYTES=\"}}", "abs.public_keys"),  // a placeholder, not a key
        ("publishing: {monthly_budget_mb: 20, budget_max_factor: 3}", "publishing.budget_max_factor"), // the governor doubles
    ])
    func eachKindOfErrorNamesItsKey(extra: String, key: String) throws {
        let base = extra.hasPrefix("abs:") ? Self.base.replacingOccurrences(of: "abs: {allow_unsigned: true}\n", with: "") : Self.base
        let r = try Self.check(base + "\n" + extra)
        #expect(r.status == 78, "\(r.output)")
        #expect(r.output.contains(key), "\(r.output)")
    }

    @Test func aMissingStationIDAndSeveralErrorsAreReportedTogether() throws {
        let r = try Self.check("abs: {allow_unsigned: true}\ncabinet: {port: 0, retries: 9}\nlog_level: loud")
        #expect(r.status == 78)
        for key in ["station.id", "cabinet.port", "cabinet.retries", "log_level"] { #expect(r.output.contains(key), "\(r.output)") }
        #expect(r.output.contains("4 problem(s)"), "\(r.output)")
    }

    @Test func aGoodFileAndTheShippedExamplePass() throws {
        let r = try Self.check(Self.base)
        #expect(r.status == 0 && r.output.contains("ok"), "\(r.output)")
        // The documented example names every key; it must stay valid (its placeholders aside).
        var example = try String(contentsOf: repoRoot.appendingPathComponent("configs/swapgate.example.yaml"), encoding: .utf8)
        example = example.replacingOccurrences(of: "BASE64-OF-32-BYTES=", with: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
        let ex = try Self.check(example)
        #expect(ex.status == 0, "\(ex.output)")
    }

    @Test func theDaemonRefusesToStartOnABadFile() throws {
        let dir = try TempDir("swapgate-cfg")
        defer { dir.remove() }
        let path = dir.path("bad.yaml")
        try (Self.base + "\ncabinet: {port: -1}").write(toFile: path, atomically: true, encoding: .utf8)
        let r = try runCommand(try productPath("swapgate"), ["run", "-c", path], timeout: 30)
        #expect(r.status == 78 && r.output.contains("cabinet.port"), "\(r.output)")
    }
}
