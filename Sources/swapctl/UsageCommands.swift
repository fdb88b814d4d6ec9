import ArgumentParser
import Foundation
import GatewayCore
import StationDomain
import StationStore

/// The Odoo usage outbox, for technicians: what is queued, what Odoo rejected, and re-sending by hand.
/// Works on the station database directly (SQLite in WAL mode: safe while the daemon runs).
struct Usage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The Odoo usage outbox: list queued, rejected and settled records; re-send a rejected one.",
        subcommands: [UsageList.self, UsageResend.self])
}

struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Gateway configuration file (its store.path is used).")
    var config: String = "/etc/swapgate/swapgate.yaml"
    @Option(name: .long, help: "The station database, instead of the configuration's.")
    var store: String?
    @Flag(name: .long, help: "Print JSON instead of a table.")
    var json = false

    func open() throws -> StationStore {
        let path: String
        if let store { path = store } else {
            do { path = try GatewayConfiguration.load(path: config).store.path } catch { throw ValidationError("\(error)") }
        }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("no station database at \(path)", code: 1) }
        return try StationStore(path: path)
    }
}

struct UsageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List usage records (default: pending and rejected).")
    @Option(help: "pending, rejected or settled; all when omitted.") var state: String?
    @Option(help: "At most this many records.") var limit = 50
    @OptionGroup var options: StoreOptions

    func run() async throws {
        let store = try options.open()
        var filter: UsageState?
        if let state {
            guard let s = UsageState(rawValue: state) else { throw ValidationError("--state must be pending, rejected or settled") }
            filter = s
        }
        let items = try await store.listUsage(state: filter, limit: limit)
        let stats = try await store.usageStats()
        try await store.close()
        if options.json {
            printJSON(UsageListView(pending: stats.pending, rejected: stats.rejected, settled: stats.settled,
                                    records: items.map(UsageRow.init)))
            return
        }
        print("pending \(stats.pending), rejected \(stats.rejected), settled \(stats.settled)"
              + (stats.oldestPendingAt.map { ", oldest pending since \(Timestamp.rfc3339($0))" } ?? ""))
        print(table(["key", "state", "attempts", "occurred", "customer", "energy kWh", "last error"], items.map {
            [$0.record.idempotencyKey, $0.state.rawValue, String($0.attempts), Timestamp.rfc3339($0.record.occurredAt),
             $0.record.customerID, $0.record.lines.first { $0.unit == "kWh" }.map { String(format: "%.3f", $0.quantity) } ?? "-",
             String(($0.lastError ?? "-").prefix(60))]
        }))
    }
}

struct UsageResend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resend", abstract: "Queue a rejected record again (its idempotency key is kept).")
    @Argument(help: "The record's idempotency key (the swap id).") var key: String
    @OptionGroup var options: StoreOptions

    func run() async throws {
        let store = try options.open()
        let ok = try await store.resendUsage(key: key, now: Date())
        try await store.close()
        guard ok else { throw fail("no usage record \(key)", code: 1) }
        print("\(key): queued again; the daemon sends it with its next pass")
    }
}

struct UsageListView: Encodable {
    let pending: Int, rejected: Int, settled: Int
    let records: [UsageRow]
}

struct UsageRow: Encodable {
    let key: String, state: String, attempts: Int, lastError: String?, occurredAt: String, customerID: String, record: UsageRecord
    init(_ s: StoredUsage) {
        key = s.record.idempotencyKey; state = s.state.rawValue; attempts = s.attempts; lastError = s.lastError
        occurredAt = Timestamp.rfc3339(s.record.occurredAt); customerID = s.record.customerID; record = s.record
    }
}
