import Foundation
import Testing
import TestSupport

/// swapctl's commands are nested types with shared option groups; every command line of before still parses
/// (each reaches its own help, and with a socket nobody listens on, the daemon-bound ones exit 2, not 1).
@Suite struct SwapctlCommandTreeTests {
    static let commands: [[String]] = [
        ["status"], ["slots"], ["bms", "3"], ["read", "--address", "0"], ["events"], ["queues"], ["usage", "list"],
        ["usage", "resend", "K"], ["entitlements", "C"], ["audit"], ["config", "show"], ["metrics"],
        ["diagnostics", "-o", "/dev/null"], ["swap", "C"],
    ]

    @Test func everyCommandLineStillParses() throws {
        let swapctl = try productPath("swapctl")
        for c in Self.commands + [["unlock", "3"], ["service", "3", "--out"], ["config", "check"], ["direct", "cabinet"],
                                  ["direct", "slots"], ["direct", "bms", "3"]] {
            let help = try runCommand(swapctl, c + ["--help"])
            #expect(help.status == 0 && help.output.contains("USAGE: swapctl \(c[0])"), "\(c): \(help.output)")
        }
        let nowhere = NSTemporaryDirectory() + "no-daemon-\(getpid()).sock"
        for c in Self.commands {
            for arguments in [c + ["--socket", nowhere], ["--socket", nowhere] + c] {
                let r = try runCommand(swapctl, arguments)
                #expect(r.status == 2 && r.output.contains("cannot reach the daemon at \(nowhere)"), "\(arguments): \(r.output)")
            }
        }
    }

    @Test func helpGroupsTheCommands() throws {
        let help = try runCommand(try productPath("swapctl"), ["--help"])
        for group in ["STATION (THROUGH THE DAEMON) SUBCOMMANDS", "ACTIONS (TECHNICIAN CREDENTIAL; AUDITED) SUBCOMMANDS",
                      "SUPPORT SUBCOMMANDS", "DAEMON STOPPED SUBCOMMANDS"] {
            #expect(help.output.contains(group), "\(help.output)")
        }
    }
}
