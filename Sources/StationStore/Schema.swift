import SQLiteLink

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

        migrator.registerMigration("v2-entitlements") { db in
            // ABS's entitlement records as cached (Entitlements.swift). Replaced whole by a
            // snapshot: rows are staged into `entitlement_staging` (same DDL, see
            // `StationStore.entitlementStagingDDL`) in short transactions, then swapped in by
            // DROP + RENAME in one short transaction. The customer index is the UNIQUE constraint
            // (customer_id, plan_instance_id): its automatic index is renamed with the table,
            // where a named index would keep the staging table's name.
            try db.execute(sql: """
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

                -- Swaps completed here that ABS may not have counted yet (entitlements.md).
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
                CREATE INDEX pending_local_swap_plan ON pending_local_swap(plan_instance_id);
                CREATE INDEX pending_local_swap_event ON pending_local_swap(event_seq);

                -- markSent copies the PUBACK time of a pending swap's event into its row, so the
                -- time survives retention deleting the sent event.
                CREATE TRIGGER event_ack_pending_local_swap
                AFTER UPDATE OF sent_at_ms ON event
                WHEN NEW.sent_at_ms IS NOT NULL AND OLD.sent_at_ms IS NULL
                BEGIN
                    UPDATE pending_local_swap SET acked_at_ms = NEW.sent_at_ms
                    WHERE event_seq = NEW.seq AND acked_at_ms IS NULL;
                END;
                """)
        }

        migrator.registerMigration("v2-swaps") { db in
            try db.execute(sql: """
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
                CREATE INDEX swap_in_progress ON swap(ord) WHERE final = 0;
                CREATE INDEX swap_stage ON swap(stage);
                """)
        }

        migrator.registerMigration("v2-usage") { db in
            try db.execute(sql: """
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
                CREATE INDEX usage_outbox_state ON usage_outbox(state, ord);
                """)
        }

        migrator.registerMigration("v2-audit") { db in
            try db.execute(sql: """
                CREATE TABLE audit (
                    id INTEGER PRIMARY KEY,
                    ts_ms INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL CHECK (length(action) > 0),
                    detail TEXT NOT NULL                      -- JSON text
                );
                """)
        }

        migrator.registerMigration("v2-seen-requests") { db in
            try db.execute(sql: """
                CREATE TABLE seen_request (
                    request_id TEXT PRIMARY KEY NOT NULL,
                    expires_at_ms INTEGER NOT NULL
                ) WITHOUT ROWID;
                CREATE INDEX seen_request_expiry ON seen_request(expires_at_ms);
                """)
        }

        migrator.registerMigration("v3-counted-through-seq") { db in
            // Contract 1.1: ABS acknowledges the station's swaps with `counted_through_seq` (the
            // highest event seq its records count). The highest value applied so far, in one row:
            // it only moves forward (Entitlements.swift, `acknowledgeLocalSwaps`). NULL: no applied
            // snapshot or delta carried the field yet. A pending local swap is deleted only when
            // this covers its event's seq; PUBACK times (`acked_at_ms`) no longer acknowledge.
            try db.execute(sql: """
                CREATE TABLE abs_counted_through (
                    id INTEGER PRIMARY KEY CHECK (id = 1),
                    counted_through_seq INTEGER CHECK (counted_through_seq >= 0)
                );
                INSERT INTO abs_counted_through (id, counted_through_seq) VALUES (1, NULL);
                """)
        }

        migrator.registerMigration("v4-per-record-counted-through") { db in
            // The `counted_through_seq` each cached record's numbers reflect (Entitlements.swift,
            // "Acknowledgement"): a local swap counts on top of a record iff its event's seq is above
            // the record's value (or its event was never PUBACKed). A snapshot gives every record the
            // same value: `cache_counted_through_seq`, one row, no cost per record; a delta gives its
            // upserted records theirs in `abs_counted_through_record` (a row there overrides the
            // snapshot's value; NULL: covers nothing). `highest_reflected_seq`: the highest value a
            // message with the field gave, what a message without it reflects. A value is clamped when
            // applied to what ABS can have counted: the station's last seq, and below its lowest local
            // swap event not yet PUBACKed. Pending rows are no longer deleted when acknowledged (a late,
            // older snapshot may bring back numbers without them) but by `applyRecordRetention`.
            // Existing stations: the records reflect the clamped watermark (v3 deleted the rows it
            // covered; those left are above it or unsent, and stay counted).
            try db.execute(sql: """
                ALTER TABLE abs_counted_through ADD COLUMN cache_counted_through_seq INTEGER
                    CHECK (cache_counted_through_seq >= 0);
                ALTER TABLE abs_counted_through ADD COLUMN highest_reflected_seq INTEGER
                    CHECK (highest_reflected_seq >= 0);
                UPDATE abs_counted_through SET cache_counted_through_seq = min(
                    counted_through_seq,
                    (SELECT last_seq FROM event_seq WHERE id = 1),
                    coalesce((SELECT min(event_seq) FROM pending_local_swap WHERE acked_at_ms IS NULL) - 1, counted_through_seq));
                UPDATE abs_counted_through SET highest_reflected_seq = cache_counted_through_seq;
                CREATE TABLE abs_counted_through_record (
                    plan_instance_id TEXT PRIMARY KEY NOT NULL,
                    counted_through_seq INTEGER CHECK (counted_through_seq >= 0)
                ) WITHOUT ROWID;
                -- Rows now stay for the retention period: a snapshot's swap-in finds the folded-in ones,
                -- and an apply the lowest unsent one, without scanning them all.
                CREATE INDEX pending_local_swap_in_cache ON pending_local_swap(swap_id) WHERE in_cache = 1;
                CREATE INDEX pending_local_swap_unacked ON pending_local_swap(event_seq) WHERE acked_at_ms IS NULL;
                """)
        }

        migrator.registerMigration("v5-entitlement-snapshot-parts") { db in
            // Snapshots in parts (SnapshotStaging.swift, docs/store.md "Snapshots in parts"): the one
            // unfinished set (set numbers never reused: AUTOINCREMENT; its rows outlive it until deleted in
            // chunks), the parts that arrived, and their records (the columns of `entitlement`, keyed by
            // set and plan instance id, so a record in two parts of one snapshot is refused).
            try db.execute(sql: """
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
                """)
        }

        return migrator
    }
}
