import Foundation
import Testing
import TestSupport

/// The fair benchmarks (issue 13 item 6), run small on the built swapbench: no figure is judged (tests never assert
/// timings), only that each benchmark runs through the real parts and prints its baseline and per-round ratios.
@Suite(.serialized) struct SwapbenchFairnessTests {
    func swapbench(_ args: [String], timeout: Double = 240) throws -> (status: Int32, output: String) {
        try runCommand(try productPath("swapbench"), args, timeout: timeout)
    }

    /// The bare relay client answers every signed swap command through the same mosquitto (a lost answer would
    /// fail the run: `no reply to relay-…`), and the gateway's own cost is printed beside it, in µs.
    @Test func decisionRunsAgainstTheBareRelayClient() throws {
        let r = try swapbench(["decision", "--entitlements", "200", "--swaps", "2", "--echoes", "5", "--relays", "20"])
        #expect(r.status == 0, "\(r.output.suffix(3000))")
        #expect(r.output.contains("bare relay client → reply"), "\(r.output)")
        #expect(r.output.contains("(20 signed swap commands, answered with no logic)"), "\(r.output)")
        #expect(r.output.contains("gateway cost (decision − relay)"), "\(r.output)")
        #expect(r.output.range(of: #"MQTT echo round trip +p50 \d+ µs"#, options: .regularExpression) != nil, "\(r.output)")
    }

    /// The one-cabinet scan reads station-sim in its own process (the built binary beside swapbench) and reports
    /// the median of the per-round ratios with each round's ratio.
    @Test func modbusRunsTheSimulatorInItsOwnProcessWithPerRoundRatios() throws {
        let r = try swapbench(["modbus", "--scans", "20", "--rounds", "3", "--cabinets", "0"])
        #expect(r.status == 0, "\(r.output.suffix(3000))")
        #expect(r.output.contains("station-sim in its own process"), "\(r.output)")
        #expect(r.output.range(of: #"median of per-round ratios \([0-9.]+, [0-9.]+, [0-9.]+\)"#, options: .regularExpression) != nil,
                "\(r.output)")
    }

    /// Events against mosquitto at its default settings, per-round ratios.
    @Test func eventsRunAgainstTheDefaultBrokerWithPerRoundRatios() throws {
        let r = try swapbench(["events", "--events", "300", "--rounds", "2", "--window", "20", "--broker", "default"])
        #expect(r.status == 0, "\(r.output.suffix(3000))")
        #expect(r.output.contains("mosquitto at its default settings"), "\(r.output)")
        #expect(r.output.range(of: #"ratio gateway/raw +[0-9.]+× median of per-round ratios \([0-9.]+, [0-9.]+\)"#,
                               options: .regularExpression) != nil, "\(r.output)")
    }
}
