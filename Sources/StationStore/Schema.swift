import GRDB

// The schema of the station database, as a list of named migrations.
//
// Rules for later issues (entitlements cache, swaps in progress, usage records, audit trail,
// seen request ids):
// - Append new migrations at the end of `makeMigrator()` with a new name ("v2-entitlements", …);
//   never edit or reorder a migration that has shipped.
// - Migrations are additive (new tables, new indexes, new nullable columns), so that a rolled-back
//   binary can still open a database a newer one migrated.
// - Do not declare a FOREIGN KEY to `event`: retention deletes sent events. Keep the event's
//   `seq`/`event_id` as a plain column if a row needs to point at its event.
// - Tables of other features are written in the same transaction as their events: use
//   `StationStore.appendEvents(_:in:)` inside `StationStore.write`.
extension StationStore {
    static func makeMigrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()

        migrator.registerMigration("v1-event-log") { db in
            // The seq counter lives in its own one-row table and is updated in the same
            // transaction as the inserts, so a seq is never reused (even when retention deleted
            // every row) and never skipped (a rolled-back transaction rolls the counter back too).
            try db.execute(sql: """
                CREATE TABLE event_seq (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    last_seq INTEGER NOT NULL CHECK (last_seq >= 0)
                );
                INSERT INTO event_seq (id, last_seq) VALUES (1, 0);

                CREATE TABLE event (
                    seq INTEGER PRIMARY KEY,                      -- from event_seq, never reused
                    event_id TEXT NOT NULL UNIQUE,                -- lowercase UUID
                    type TEXT NOT NULL CHECK (length(type) > 0),
                    ts_ms INTEGER NOT NULL,                       -- Unix time, milliseconds, UTC
                    data BLOB NOT NULL,                           -- JSON object bytes, opaque
                    sent_at_ms INTEGER                            -- PUBACK time; NULL = unsent
                );
                -- The send queue: only unsent rows, in seq order.
                CREATE INDEX event_unsent ON event(seq) WHERE sent_at_ms IS NULL;
                -- Retention by age of sent rows.
                CREATE INDEX event_sent_at ON event(sent_at_ms) WHERE sent_at_ms IS NOT NULL;
                -- Technicians' search by type, newest or oldest first.
                CREATE INDEX event_type_seq ON event(type, seq);
                """)
        }

        migrator.registerMigration("v1-meta") { db in
            // Small key/value facts that must survive restarts (clean_shutdown, cabinet state, …).
            try db.execute(sql: """
                CREATE TABLE meta (
                    key TEXT PRIMARY KEY NOT NULL,
                    value TEXT NOT NULL
                ) WITHOUT ROWID;
                """)
        }

        return migrator
    }
}
