import ArgumentParser
import Foundation

@main
struct SwapCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapctl",
        abstract: "Technician's tool for a swap station: status, slots, BMS, bus, queues, entitlements, audit, maintenance.",
        discussion: """
        Talks to the running daemon over its control socket (--socket, $SWAPCTL_SOCKET, default \
        /run/swapgate/control.sock; you must be in the swapgate group). `swapctl direct …` reads the \
        cabinet over Modbus itself, for when the daemon is stopped.
        Exit codes: 0 ok, 1 usage or configuration error, 2 daemon or cabinet unreachable, 3 data error, \
        4 refused (credential, slot, cabinet).
        """,
        subcommands: [Status.self, Slots.self, BMS.self, Read.self, Events.self, Queues.self, Usage.self, Entitlements.self,
                      Audit.self, Unlock.self, Service.self, LocalSwap.self, Config.self, Diagnostics.self, Metrics.self, Direct.self])
}

enum ExitStatus {
    static let unreachable: Int32 = 2
    static let dataError: Int32 = 3
    static let refused: Int32 = 4
}
