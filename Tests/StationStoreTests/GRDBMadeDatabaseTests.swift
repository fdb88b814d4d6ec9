import Foundation
import SQLiteLink
import Testing
@testable import StationStore

/// A station database made by the GRDB build (the last one before SQLiteLink, commit 1e6487c's tree): the crash
/// child of `DurabilityTests` (`crashChildAppendLoop`) ran on a file for 4 s, its sent-or-not events trimmed to the
/// last two, then `sqlite3 station.sqlite .dump`. GRDB's bookkeeping is in it as GRDB wrote it: the table
/// `grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY)` and one row per migration.
let grdbMadeStationDump = #"""
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE grdb_migrations (identifier TEXT NOT NULL PRIMARY KEY);
INSERT INTO grdb_migrations VALUES('v1-event-log');
INSERT INTO grdb_migrations VALUES('v1-meta');
INSERT INTO grdb_migrations VALUES('v2-entitlements');
INSERT INTO grdb_migrations VALUES('v2-swaps');
INSERT INTO grdb_migrations VALUES('v2-usage');
INSERT INTO grdb_migrations VALUES('v2-audit');
INSERT INTO grdb_migrations VALUES('v2-seen-requests');
INSERT INTO grdb_migrations VALUES('v3-counted-through-seq');
INSERT INTO grdb_migrations VALUES('v4-per-record-counted-through');
INSERT INTO grdb_migrations VALUES('v5-entitlement-snapshot-parts');
CREATE TABLE event_seq (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
);
INSERT INTO event_seq VALUES(1,15168);
CREATE TABLE event (
    seq INTEGER PRIMARY KEY,                      -- from event_seq, never reused
    event_id TEXT NOT NULL UNIQUE,                -- lowercase UUID
    type TEXT NOT NULL CHECK (length(type) > 0),
    ts_ms INTEGER NOT NULL,                       -- Unix time, milliseconds, UTC
    data BLOB NOT NULL,                           -- JSON object bytes, opaque
    sent_at_ms INTEGER                            -- PUBACK time; NULL = unsent
);
INSERT INTO event VALUES(15167,'b6be2d97-21ff-4db2-9cca-ea9a09d43912','battery.inserted',1795005056123,X'7b226e223a353035362c22706164223a227878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878227d',NULL);
INSERT INTO event VALUES(15168,'b1d98246-5845-423e-9445-1af5baa0fb1d','battery.inserted',1795005057123,X'7b226e223a353035372c22706164223a227878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878787878227d',NULL);
CREATE TABLE meta (
    key TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE entitlement (
    plan_instance_id TEXT PRIMARY KEY NOT NULL CHECK (length(plan_instance_id) > 0),
    customer_id TEXT NOT NULL CHECK (length(customer_id) > 0),
    subscription_ref TEXT NOT NULL,
    status TEXT NOT NULL,
    valid_from_ms INTEGER NOT NULL,
    valid_until_ms INTEGER NOT NULL,
    network_code TEXT NOT NULL,
    battery_family TEXT NOT NULL,
    swap_quota INTEGER NOT NULL,
    swaps_used INTEGER NOT NULL,
    energy_quota_kwh REAL NOT NULL,
    energy_used_kwh REAL NOT NULL,
    overage_allowed INTEGER NOT NULL,
    max_batteries INTEGER NOT NULL,
    batteries_out TEXT NOT NULL,              -- JSON array of battery ids
    version INTEGER NOT NULL,                 -- the record's own version at ABS
    UNIQUE (customer_id, plan_instance_id)
) WITHOUT ROWID;
CREATE TABLE pending_local_swap (
    swap_id TEXT PRIMARY KEY NOT NULL,
    plan_instance_id TEXT NOT NULL,
    swaps INTEGER NOT NULL,
    energy_kwh REAL NOT NULL,
    returned_battery_id TEXT,
    issued_battery_id TEXT,
    completed_at_ms INTEGER NOT NULL,
    event_seq INTEGER NOT NULL,               -- its swap.completed event (no FK: retention)
    acked_at_ms INTEGER,                      -- that event's PUBACK time, copied by trigger
    in_cache INTEGER NOT NULL CHECK (in_cache IN (0, 1))  -- folded into the cached row
) WITHOUT ROWID;
CREATE TABLE swap (
    ord INTEGER PRIMARY KEY,                  -- creation order
    swap_id TEXT NOT NULL UNIQUE,
    request_id TEXT NOT NULL,
    customer_id TEXT NOT NULL,
    plan_instance_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    stage TEXT NOT NULL,
    final INTEGER NOT NULL CHECK (final IN (0, 1)),
    accepted_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    finished_at_ms INTEGER,
    record TEXT NOT NULL                      -- JSON of the SwapRecord
);
CREATE TABLE usage_outbox (
    ord INTEGER PRIMARY KEY,                  -- creation order: sent oldest first
    key TEXT NOT NULL UNIQUE,                 -- the idempotency key
    swap_id TEXT NOT NULL UNIQUE,             -- one usage record per swap
    state TEXT NOT NULL CHECK (state IN ('pending', 'settled', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at_ms INTEGER NOT NULL,
    last_error TEXT,
    created_at_ms INTEGER NOT NULL,
    settled_at_ms INTEGER,
    odoo_log_id INTEGER,
    record TEXT NOT NULL                      -- JSON of the UsageRecord
);
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    ts_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL CHECK (length(action) > 0),
    detail TEXT NOT NULL                      -- JSON text
);
CREATE TABLE seen_request (
    request_id TEXT PRIMARY KEY NOT NULL,
    expires_at_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE abs_counted_through (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    counted_through_seq INTEGER CHECK (counted_through_seq >= 0)
, cache_counted_through_seq INTEGER
    CHECK (cache_counted_through_seq >= 0), highest_reflected_seq INTEGER
    CHECK (highest_reflected_seq >= 0));
INSERT INTO abs_counted_through VALUES(1,NULL,NULL,NULL);
CREATE TABLE abs_counted_through_record (
    plan_instance_id TEXT PRIMARY KEY NOT NULL,
    counted_through_seq INTEGER CHECK (counted_through_seq >= 0)
) WITHOUT ROWID;
CREATE TABLE snapshot_part_set (
    set_no INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id TEXT NOT NULL CHECK (length(snapshot_id) > 0),
    version INTEGER NOT NULL,
    counted_through_seq INTEGER,
    parts INTEGER NOT NULL CHECK (parts >= 1),
    expires_at_ms INTEGER NOT NULL,
    started_at_ms INTEGER NOT NULL
);
CREATE TABLE snapshot_part (
    set_no INTEGER NOT NULL,
    part INTEGER NOT NULL CHECK (part >= 1),
    rows INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    PRIMARY KEY (set_no, part)
) WITHOUT ROWID;
CREATE TABLE snapshot_part_row (
    set_no INTEGER NOT NULL,
    part INTEGER NOT NULL,
    plan_instance_id TEXT NOT NULL CHECK (length(plan_instance_id) > 0),
    customer_id TEXT NOT NULL CHECK (length(customer_id) > 0),
    subscription_ref TEXT NOT NULL,
    status TEXT NOT NULL,
    valid_from_ms INTEGER NOT NULL,
    valid_until_ms INTEGER NOT NULL,
    network_code TEXT NOT NULL,
    battery_family TEXT NOT NULL,
    swap_quota INTEGER NOT NULL,
    swaps_used INTEGER NOT NULL,
    energy_quota_kwh REAL NOT NULL,
    energy_used_kwh REAL NOT NULL,
    overage_allowed INTEGER NOT NULL,
    max_batteries INTEGER NOT NULL,
    batteries_out TEXT NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (set_no, plan_instance_id)
) WITHOUT ROWID;
DELETE FROM sqlite_sequence;
CREATE INDEX event_unsent ON event(seq) WHERE sent_at_ms IS NULL;
CREATE INDEX event_sent_at ON event(sent_at_ms) WHERE sent_at_ms IS NOT NULL;
CREATE INDEX event_type_seq ON event(type, seq);
CREATE INDEX pending_local_swap_plan ON pending_local_swap(plan_instance_id);
CREATE INDEX pending_local_swap_event ON pending_local_swap(event_seq);
CREATE TRIGGER event_ack_pending_local_swap
AFTER UPDATE OF sent_at_ms ON event
WHEN NEW.sent_at_ms IS NOT NULL AND OLD.sent_at_ms IS NULL
BEGIN
    UPDATE pending_local_swap SET acked_at_ms = NEW.sent_at_ms
    WHERE event_seq = NEW.seq AND acked_at_ms IS NULL;
END;
CREATE INDEX swap_in_progress ON swap(ord) WHERE final = 0;
CREATE INDEX swap_stage ON swap(stage);
CREATE INDEX usage_outbox_state ON usage_outbox(state, ord);
CREATE INDEX seen_request_expiry ON seen_request(expires_at_ms);
CREATE INDEX pending_local_swap_in_cache ON pending_local_swap(swap_id) WHERE in_cache = 1;
CREATE INDEX pending_local_swap_unacked ON pending_local_swap(event_seq) WHERE acked_at_ms IS NULL;
COMMIT;
"""#

@Suite("GRDB-made database")
struct GRDBMadeDatabaseTests {
    /// Restores the dump into a file set up as GRDB's pool left it (WAL, incremental auto-vacuum).
    static func restore(at path: String) throws {
        let queue = try DatabaseQueue(path: path)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: grdbMadeStationDump)
        }
        try queue.close()
    }

    @Test func aDatabaseTheGRDBBuildMadeOpensWithNoMigrationRerun() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        try Self.restore(at: dir.path)
        let expected = ["v1-event-log", "v1-meta", "v2-entitlements", "v2-swaps", "v2-usage", "v2-audit", "v2-seen-requests",
                        "v3-counted-through-seq", "v4-per-record-counted-through", "v5-entitlement-snapshot-parts"]
        #expect(StationStore.makeMigrator().migrations == expected)

        // A tool accepts it as this build's schema (it never migrates).
        let tool = try StationStore(existingAt: dir.path)
        #expect(try await tool.stats().lastSeq == 15168)
        try await tool.close()

        let store = try dir.open()
        let names = try await store.read { db in
            try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations ORDER BY rowid")
        }
        #expect(names == expected)
        // Re-running v1-event-log would have failed (its tables exist) or reset the seq counter.
        #expect(try await allEvents(store).map(\.seq) == [15167, 15168])
        let stored = try await store.appendEvents(makeEvents(0..<2))
        #expect(stored.map(\.seq) == [15169, 15170])
        #expect(try await store.integrityCheck() == [])
        try await store.close()
    }
}
