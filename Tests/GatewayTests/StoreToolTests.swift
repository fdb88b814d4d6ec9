import Foundation
import StationStore
import Testing
import TestSupport

/// `swapgate store usage list --store FILE` (offline, in the daemon's binary) on a station database (a copy taken from a board): read-only, never
/// migrated, no reserve file; the directory is left exactly as it was.
@Suite(.serialized) struct StoreToolTests {
    /// Names, sizes and modification times of every entry of `dir`, and of `dir` itself.
    static func listing(_ dir: String) throws -> [String: String] {
        var out: [String: String] = [:]
        let fm = FileManager.default
        let selfAttrs = try fm.attributesOfItem(atPath: dir)
        out["."] = "\((selfAttrs[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
        for name in try fm.contentsOfDirectory(atPath: dir) {
            let a = try fm.attributesOfItem(atPath: dir + "/" + name)
            out[name] = "\((a[.size] as? NSNumber)?.intValue ?? -1) \((a[.modificationDate] as? Date)?.timeIntervalSince1970 ?? -1)"
        }
        return out
    }

    @Test func usageListOnACopyLeavesItsDirectoryUnchanged() async throws {
        let work = try TempDir("store-tool")
        defer { work.remove() }
        let original = work.path("station.sqlite")
        let keys = try await UsageForwardingTests.backlog(original, count: 3)
        for round in 0 ..< 3 {
            let copyDir = work.path("copy-\(round)")
            try FileManager.default.createDirectory(atPath: copyDir, withIntermediateDirectories: true)
            let copy = copyDir + "/station.sqlite"
            try FileManager.default.copyItem(atPath: original, toPath: copy)
            pause(1.1)   // so that any write would show in a modification time (whole seconds on some file systems)
            let before = try Self.listing(copyDir)
            let r = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--store", copy, "--json"])
            #expect(r.status == 0, "\(r.output)")
            let rows = try JSONSerialization.jsonObject(with: Data(r.output.utf8)) as? [[String: Any]] ?? []
            #expect(Set(rows.compactMap { $0["key"] as? String }) == Set(keys))
            #expect(try Self.listing(copyDir) == before, "round \(round)")
        }
    }

    /// SQL on the file through Python's sqlite3 (an outside peer), returning its printed output.
    static func sql(_ path: String, _ statement: String) throws -> String {
        let script = "import sqlite3,sys\nc=sqlite3.connect(sys.argv[1])\nr=c.execute(sys.argv[2]).fetchall()\nc.commit()\nprint(r)\nc.close()"
        let r = try runCommand("/usr/bin/python3", ["-c", script, path, statement])
        guard r.status == 0 else { throw TestSupportError.processFailed(r.output) }
        return r.output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test func aDatabaseOfAnotherSchemaIsRefusedClearly() async throws {
        let work = try TempDir("store-tool")
        defer { work.remove() }
        let path = work.path("station.sqlite")
        _ = try await UsageForwardingTests.backlog(path, count: 1)
        try FileManager.default.removeItem(atPath: path + "-reserve")   // made by the store that wrote the backlog
        let migrations = try Self.sql(path, "SELECT COUNT(*) FROM grdb_migrations")
        // Newer: a migration this build does not know.
        _ = try Self.sql(path, "INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
        let newer = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--store", path])
        #expect(newer.status != 0)
        #expect(newer.output.contains("newer") && newer.output.contains("v99-from-the-future"), "\(newer.output)")
        // Older: the last migration of this build missing.
        _ = try Self.sql(path, "DELETE FROM grdb_migrations WHERE identifier = 'v99-from-the-future'")
        _ = try Self.sql(path, "DELETE FROM grdb_migrations WHERE rowid = (SELECT MAX(rowid) FROM grdb_migrations)")
        let older = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--store", path])
        #expect(older.status != 0)
        #expect(older.output.contains("older"), "\(older.output)")
        // It did not migrate it, nor leave a reserve file.
        let count = { (text: String) in Int(text.filter(\.isNumber)) ?? -1 }
        #expect(count(try Self.sql(path, "SELECT COUNT(*) FROM grdb_migrations")) == count(migrations) - 1)
        #expect(!FileManager.default.fileExists(atPath: path + "-reserve"))
    }

    /// swapctl no longer links the store: its old `--store` option says where the command went, exit 1, and
    /// leaves the file alone; `swapgate store usage resend` re-queues a rejected record (4 when there is none).
    @Test func swapctlStorePointsToTheDaemonBinaryAndResendWorksOffline() async throws {
        let work = try TempDir("store-tool")
        defer { work.remove() }
        let path = work.path("station.sqlite")
        _ = try await UsageForwardingTests.backlog(path, count: 1)
        for arguments in [["usage", "list", "--store", path], ["usage", "resend", "k", "--store", path]] {
            let r = try runCommand(try productPath("swapctl"), arguments)
            #expect(r.status == 1, "\(r.output)")
            #expect(r.output.contains("swapgate store usage") && r.output.contains(path), "\(r.output)")
        }
        let missing = try runCommand(try productPath("swapgate"), ["store", "usage", "resend", "no-such-key", "--store", path])
        #expect(missing.status == 4, "\(missing.output)")
        #expect(missing.output.contains("no usage record no-such-key"), "\(missing.output)")
        _ = try Self.sql(path, "UPDATE usage_outbox SET state = 'rejected'")
        let rejected = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--state", "rejected", "--store", path, "--json"])
        let rows = try JSONSerialization.jsonObject(with: Data(rejected.output.utf8)) as? [[String: Any]] ?? []
        let key = try #require(rows.first?["key"] as? String, "\(rejected.output)")
        let resent = try runCommand(try productPath("swapgate"), ["store", "usage", "resend", key, "--store", path])
        #expect(resent.status == 0, "\(resent.output)")
        let table = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--state", "pending", "--store", path])
        #expect(table.status == 0 && table.output.contains(key) && table.output.contains("pending"), "\(table.output)")
        // Audited as the daemon's re-send is, by the local account.
        let audit = try Self.sql(path, "SELECT actor || ' ' || action || ' ' || detail FROM audit WHERE action = 'usage.resend'")
        #expect(audit.contains("local:") && audit.contains(key), "\(audit)")

        // No audit, nothing queued: a trigger refuses audit rows; the record stays rejected, exit 3.
        _ = try Self.sql(path, "UPDATE usage_outbox SET state = 'rejected'")
        _ = try Self.sql(path, "CREATE TRIGGER no_audit BEFORE INSERT ON audit BEGIN SELECT RAISE(ABORT, 'audit refused'); END")
        let refused = try runCommand(try productPath("swapgate"), ["store", "usage", "resend", key, "--store", path])
        #expect(refused.status == 3 && refused.output.contains("cannot be audited"), "\(refused.output)")
        let still = try runCommand(try productPath("swapgate"), ["store", "usage", "list", "--state", "rejected", "--store", path])
        #expect(still.output.contains(key), "\(still.output)")
    }
}
