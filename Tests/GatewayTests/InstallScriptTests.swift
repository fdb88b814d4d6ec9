// tools/install.sh, run for real into a temporary root: the layout and modes, a second run that keeps
// an edited configuration, and --uninstall. Needs no root: --root implies no accounts and no systemctl.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite struct InstallScriptTests {
    /// The repository root: Tests/GatewayTests/InstallScriptTests.swift → up 3.
    static let repository = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let script = repository.appendingPathComponent("tools/install.sh").path
    static let example = repository.appendingPathComponent("configs/swapgate.example.yaml").path

    /// Runs tools/install.sh with `arguments`: its exit status and combined output.
    func install(_ arguments: [String]) throws -> (status: Int32, output: String) {
        try runCommand("bash", [Self.script] + arguments, timeout: 120)
    }

    /// The permission bits of `path`, nil if it does not exist.
    func mode(_ path: String) -> Int? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Int(st.st_mode) & 0o7777
    }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    @Test func installsReinstallsAndUninstallsUnderARoot() throws {
        // The binaries the tests run anyway (fails clearly when they were not built).
        _ = try productPath("swapgate")
        _ = try productPath("swapctl")
        let bin = builtProductsDirectory().path
        let root = try TempDir("swapgate-install")
        defer { root.remove() }
        let arguments = ["--root", root.url.path, "--bin-dir", bin, "--no-systemctl"]

        let first = try install(arguments)
        try #require(first.status == 0, "install.sh failed: \(first.output)")

        let swapgate = root.path("usr/local/bin/swapgate")
        let swapctl = root.path("usr/local/bin/swapctl")
        for binary in [swapgate, swapctl] {
            #expect(FileManager.default.isExecutableFile(atPath: binary), "\(binary)")
            #expect(mode(binary) == 0o755, "\(binary)")
        }
        let help = try runCommand(swapgate, ["--help"])
        #expect(help.status == 0, "installed swapgate --help: \(help.output)")
        #expect(help.output.contains("check-config"), "\(help.output)")

        let config = root.path("etc/swapgate/swapgate.yaml")
        let example = try #require(FileManager.default.contents(atPath: Self.example))
        #expect(FileManager.default.contents(atPath: config) == example, "the config is not the example, byte for byte")
        #expect(mode(config) == 0o640)
        #expect(mode(root.path("etc/swapgate/technicians")) == 0o640)
        #expect(mode(root.path("var/lib/swapgate")) == 0o700)
        let unitPath = root.path("etc/systemd/system/swapgate.service")
        let unit = try String(contentsOfFile: unitPath, encoding: .utf8)
        #expect(unit.contains("Type=notify"))
        #expect(unit.contains("WatchdogSec="))
        #expect(mode(unitPath) == 0o644)

        // An operator edits the configuration; a second run (an upgrade) keeps it byte for byte and
        // puts the current example beside it.
        let edited = example + Data("\n# edited by the operator\n".utf8)
        try edited.write(to: URL(fileURLWithPath: config))
        let second = try install(arguments)
        try #require(second.status == 0, "second install.sh run failed: \(second.output)")
        #expect(FileManager.default.contents(atPath: config) == edited, "the edited config was changed")
        #expect(FileManager.default.contents(atPath: config + ".new") == example, "swapgate.yaml.new is not the example")
        #expect(second.output.contains("swapgate.yaml.new"), "\(second.output)")
        #expect(FileManager.default.isExecutableFile(atPath: swapgate))
        #expect(exists(unitPath))

        // --uninstall: binaries and unit go; configuration and data stay.
        let store = root.path("var/lib/swapgate/station.sqlite")
        try Data("a station store".utf8).write(to: URL(fileURLWithPath: store))
        let removal = try install(["--root", root.url.path, "--uninstall", "--no-systemctl"])
        try #require(removal.status == 0, "install.sh --uninstall failed: \(removal.output)")
        #expect(!exists(swapgate))
        #expect(!exists(swapctl))
        #expect(!exists(unitPath))
        #expect(FileManager.default.contents(atPath: config) == edited, "uninstall changed the config")
        #expect(exists(config + ".new"))
        #expect(exists(root.path("etc/swapgate/technicians")))
        #expect(exists(store))
        #expect(mode(root.path("var/lib/swapgate")) == 0o700)
    }

    @Test func helpAndRefusals() throws {
        let help = try install(["--help"])
        #expect(help.status == 0, "\(help.output)")
        #expect(help.output.contains("--uninstall"), "\(help.output)")

        let root = try TempDir("swapgate-install-refused")
        defer { root.remove() }
        // Binaries missing: refused before anything is installed.
        let missing = try install(["--root", root.url.path, "--bin-dir", root.path("no-such-dir"), "--no-systemctl"])
        #expect(missing.status != 0)
        #expect(missing.output.contains("no-such-dir"), "\(missing.output)")
        #expect(!exists(root.path("usr/local/bin/swapgate")))
        #expect(!exists(root.path("etc/swapgate")))

        let unknown = try install(["--frobnicate"])
        #expect(unknown.status != 0)
        #expect(unknown.output.contains("--frobnicate"), "\(unknown.output)")
    }
}
