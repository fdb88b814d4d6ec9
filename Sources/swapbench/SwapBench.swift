import ArgumentParser
import Foundation

/// Release-mode benchmarks of the gateway's hot paths, each against a bare baseline measured in the
/// same run on the same machine, printed as ratios. Run: `swift run -c release swapbench all`.
@main
struct SwapBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapbench",
        abstract: "Benchmarks against same-run baselines (raw libmodbus, raw libmosquitto, raw SQLite).",
        subcommands: [ModbusBench.self, EventsBench.self, DecisionBench.self, RSSBench.self, SnapshotBench.self, IdleBench.self, OdooBench.self, UplinkBench.self, All.self])
}

struct All: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run every benchmark.")
    @Option(name: .customLong("standin"), help: "Path of tools/odoo_standin.py for the odoo benchmark (default: searched as `odoo` does).")
    var standInPath: String?
    func run() async throws {
        try await ModbusBench.parse([]).run()
        try await EventsBench.parse([]).run()
        try await DecisionBench.parse([]).run()
        try await RSSBench.parse([]).run()
        try await OdooBench.parse(standInPath.map { ["--standin", $0] } ?? []).run()
    }
}

/// Written straight to stdout (unbuffered), so figures show as they are measured.
func report(_ title: String, _ lines: [(String, String)]) {
    let w = lines.map(\.0.count).max() ?? 0
    var text = "== \(title)\n"
    for (k, v) in lines { text += "  \(k.padding(toLength: w, withPad: " ", startingAt: 0))  \(v)\n" }
    FileHandle.standardOutput.write(Data(text.utf8))
}

func monotonic() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s[s.count / 2]
}
