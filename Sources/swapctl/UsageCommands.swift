#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser
import ControlProtocol
import StationDomain

extension SwapCtl {
    /// The Odoo usage outbox, for technicians: what is queued, what Odoo rejected, and re-sending by hand, through the
    /// running daemon. A station database file is inspected offline with `swapgate store usage list|resend --store FILE`
    /// (the daemon's binary links the store; swapctl does not).
    struct Usage: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The Odoo usage outbox: list queued, rejected and settled records; re-send a rejected one.",
            subcommands: [List.self, Resend.self])
    }
}

/// `--store FILE` moved to `swapgate store usage …`; it is still parsed so that old command lines get a clear answer.
struct StoreOption: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("Moved: use `swapgate store usage … --store FILE`.", visibility: .hidden))
    var store: String?

    func refuseIfGiven(_ subcommand: String) throws {
        guard let store else { return }
        throw fail("--store moved to the daemon's binary, which links the store: swapgate store usage \(subcommand) --store \(store)", code: 1)
    }
}

extension SwapCtl.Usage {
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List usage records, newest first (all states unless --state).")
        @Option(help: "pending, rejected or settled; all when omitted.") var state: String?
        @Option(help: "At most this many records.") var limit = 50
        @OptionGroup var direct: StoreOption
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try direct.refuseIfGiven("list")
            if let state, UsageState(rawValue: state) == nil { throw ValidationError("--state must be pending, rejected or settled") }
            var r = ControlRequest(op: "usage")
            r.state = state; r.limit = limit
            let items = try daemon.client().call(r, as: [UsageView].self)
            if daemon.json { printJSON(items) } else { print(usageTable(items)) }
        }
    }

    struct Resend: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "resend", abstract: "Queue a rejected record again (its idempotency key is kept).")
        @Argument(help: "The record's idempotency key (the swap id).") var key: String
        @OptionGroup var direct: StoreOption
        @OptionGroup var daemon: DaemonOptions

        func run() async throws {
            try direct.refuseIfGiven("resend \(key)")
            var r = ControlRequest(op: "usage_resend")
            r.key = key
            _ = try daemon.client().call(r, as: UsageView.self)
            print("\(key): queued again; the daemon sends it with its next pass")
        }
    }
}
