import ArgumentParser
import ControlProtocol
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
import GatewayCore
import StationDomain
import StationStore

/// Offline inspection of a station database (SQLite in WAL mode: safe even while the daemon runs, e.g. on a copy
/// taken from a board). It lives in the daemon's binary, which links the store; swapctl asks the running daemon.
/// `list` opens the file read-only and leaves it and its directory untouched; `resend` writes. Neither migrates
/// the database nor creates a reserve file. Exit codes as swapctl's: 0 ok, 1 usage or file error, 4 not found.
struct Store: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Work on a station database file directly (offline inspection; the daemon need not run).",
        subcommands: [StoreUsage.self])
}

struct StoreUsage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "usage",
        abstract: "The Odoo usage outbox in a station database: list records; re-send a rejected one.",
        subcommands: [StoreUsageList.self, StoreUsageResend.self])
}

struct StoreFile: ParsableArguments {
    @Option(name: .long, help: "The station database (e.g. /var/lib/swapgate/station.sqlite or a copy).")
    var store: String

    /// Opens the database as it is: never migrated, no reserve file; read-only unless `forWriting`.
    func open(forWriting: Bool = false) throws -> StationStore {
        guard FileManager.default.fileExists(atPath: store) else { throw storeFail("no station database at \(store)", code: 1) }
        do { return try StationStore(existingAt: store, readOnly: !forWriting) } catch {
            throw storeFail("cannot open \(store): \(error)", code: 1)
        }
    }
}

func storeFail(_ message: String, code: Int32) -> ExitCode {
    writeAll("swapgate: \(message)\n", to: 2)
    return ExitCode(code)
}

struct StoreUsageList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List usage records, newest first (all states unless --state).")
    @Option(help: "pending, rejected or settled; all when omitted.") var state: String?
    @Option(help: "At most this many records.") var limit = 50
    @OptionGroup var file: StoreFile
    @Flag(name: .long, help: "Print JSON instead of a table.") var json = false

    func run() async throws {
        if let state, UsageState(rawValue: state) == nil { throw storeFail("--state must be pending, rejected or settled", code: 1) }
        let store = try file.open()
        let items = try await store.listUsage(state: state.flatMap(UsageState.init(rawValue:)), limit: limit).map(ControlHandler.view)
        try await store.close()
        if json {
            print(String(decoding: try ControlJSON.encoder(pretty: true).encode(items), as: UTF8.self))
        } else {
            print(UsageView.table(items))
        }
    }
}

struct StoreUsageResend: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "resend", abstract: "Queue a rejected record again (its idempotency key is kept).")
    @Argument(help: "The record's idempotency key (the swap id).") var key: String
    @OptionGroup var file: StoreFile

    func run() async throws {
        let store = try file.open(forWriting: true)
        // The same rule as the daemon's StationOperations.resendUsage: audited before it is queued; no audit,
        // nothing queued. The actor is the local account (`local:<user>`), as the file has no technician name.
        guard try await store.usage(key: key) != nil else {
            try await store.close()
            throw storeFail("no usage record \(key)", code: 4)
        }
        let now = Date()
        let user = ProcessInfo.processInfo.environment["SUDO_USER"] ?? ProcessInfo.processInfo.environment["USER"] ?? "uid\(getuid())"
        do {
            try await store.appendAudit([AuditEntry(timestamp: now, actor: "local:\(user)", action: "usage.resend",
                                                    detail: String(decoding: JSON.encode(["key": key, "via": "swapgate store"]), as: UTF8.self))])
        } catch {
            try? await store.close()
            throw storeFail("the re-send cannot be audited, so nothing was queued: \(error)", code: 3)
        }
        let ok = try await store.resendUsage(key: key, now: now)
        try await store.close()
        guard ok else { throw storeFail("no usage record \(key)", code: 4) }
        print("\(key): queued again; the daemon sends it with its next pass")
    }
}
