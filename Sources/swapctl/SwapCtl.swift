import ArgumentParser
import Foundation

@main
struct SwapCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapctl",
        abstract: "Technician's tool for a swap station: cabinet, slots, BMS, the Odoo usage outbox.",
        discussion: """
        Reads the cabinet directly over Modbus (TCP or RTU). Only do this while the daemon is stopped: \
        the daemon owns the bus while it runs.
        Exit codes: 0 ok, 1 usage or configuration error, 2 cabinet unreachable, 3 data error.
        """,
        subcommands: [Cabinet.self, Slots.self, BMS.self, Usage.self])
}

enum ExitStatus {
    static let unreachable: Int32 = 2
    static let dataError: Int32 = 3
}
