import ArgumentParser
import Foundation
import GatewayCore
import StationDomain
import StationStore

/// The Odoo usage outbox, for technicians: what is queued, what Odoo rejected, and re-sending by hand.
/// Through the daemon by default; `--store FILE` works on a station database directly (SQLite in WAL mode:
/// safe even while the daemon runs, e.g. on a copy taken from a board). `list` opens it read-only and leaves
/// the file and its directory untouched; `resend` writes. Neither migrates it nor creates a reserve file.
struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The Odoo usage outbox: list queued, rejected and settled records; re-send a rejected one.",
        subcommands: [UsageList.self, UsageResend.self])
}

struct StoreOption: ParsableArguments {
    @Option(name: .long, help: "Work on this station database directly instead of asking the daemon.")
    var store: String?

    /// Opens the database as it is: never migrated, no reserve file; read-only unless `forWriting`.
    func open(forWriting: Bool = false) throws -> StationStore? {
        guard let store else { return nil }
        guard FileManager.default.fileExists(atPath: store) else { throw fail("no station database at \(store)", code: 1) }
        do { return try StationStore(existingAt: store, readOnly: !forWriting) } catch {
            throw fail("cannot open \(store): \(error)", code: 1)
        }
    }
}

struct UsageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List usage records, newest first (all states unless --state).")
    @Option(help: "pending, rejected or settled; all when omitted.") var state: String?
    @Option(help: "At most this many records.") var limit = 50
    @OptionGroup var direct: StoreOption
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        if let state, UsageState(rawValue: state) == nil { throw ValidationError("--state must be pending, rejected or settled") }
        let items: [UsageView]
        if let store = try direct.open() {
            items = try await store.listUsage(state: state.flatMap(UsageState.init(rawValue:)), limit: limit).map(ControlHandler.view)
            try await store.close()
        } else {
            var r = ControlRequest(op: "usage")
            r.state = state; r.limit = limit
            items = try daemon.client().call(r, as: [UsageView].self)
        }
        if daemon.json { printJSON(items) } else { print(usageTable(items)) }
    }
}

struct UsageResend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resend", abstract: "Queue a rejected record again (its idempotency key is kept).")
    @Argument(help: "The record's idempotency key (the swap id).") var key: String
    @OptionGroup var direct: StoreOption
    @OptionGroup var daemon: DaemonOptions

    func run() async throws {
        if let store = try direct.open(forWriting: true) {
            let ok = try await store.resendUsage(key: key, now: Date())
            try await store.close()
            guard ok else { throw fail("no usage record \(key)", code: ExitStatus.refused) }
        } else {
            var r = ControlRequest(op: "usage_resend")
            r.key = key
            _ = try daemon.client().call(r, as: UsageView.self)
        }
        print("\(key): queued again; the daemon sends it with its next pass")
    }
}
