import Foundation
import Testing
import TestSupport

/// `swapbench odoo` from a build folder outside the source tree: the stand-in's path comes from `--standin`
/// (before, it searched only above the executable and `swapbench all` exited 1).
@Suite(.serialized) struct SwapbenchStandInTests {
    @Test func odooBenchmarkRunsFromOutsideTheTreeWithTheStandInOption() throws {
        let outside = try TempDir("swapbench-outside")
        defer { outside.remove() }
        let bench = outside.path("swapbench")
        do { try FileManager.default.linkItem(atPath: try productPath("swapbench"), toPath: bench) } catch {
            try FileManager.default.copyItem(atPath: try productPath("swapbench"), toPath: bench)
        }
        func run(_ args: [String]) throws -> (status: Int32, output: String) {
            // Working directory outside the tree too.
            try runCommand("/bin/sh", ["-c", "cd \"$0\" && exec ./swapbench \"$@\"", outside.url.path] + args, timeout: 120)
        }
        let without = try run(["odoo", "--records", "20", "--raw-requests", "20"])
        #expect(without.status != 0)
        #expect(without.output.contains("--standin"), "the error says how to fix it: \(without.output)")
        let with = try run(["odoo", "--records", "40", "--raw-requests", "40", "--standin", OdooStandIn.scriptPath])
        #expect(with.status == 0, "\(with.output)")
        #expect(with.output.contains("gateway forwarder") && with.output.contains("max in flight seen by Odoo"), "\(with.output)")
        let missing = try run(["odoo", "--standin", outside.path("nope.py")])
        #expect(missing.status != 0 && missing.output.contains("nope.py"), "\(missing.output)")
        // `all` passes the option on (its help lists it; running every benchmark is the coordinator's job).
        let help = try run(["all", "--help"])
        #expect(help.output.contains("--standin"), "\(help.output)")
    }
}
