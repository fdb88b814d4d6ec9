import SQLiteLink

extension StationStore {
    /// Records `events` and sets meta keys in the same transaction: the gateway stores its last known view
    /// of the cabinet together with the events that view produced, so a restart neither repeats nor
    /// misses a change. A nil value deletes the key.
    ///
    /// Like `appendEvents(_:)`, on a full disk it relieves the pressure once (reserve file, sent events; see
    /// DiskSpace.swift) and tries again before throwing `StoreError.diskFull`.
    public func appendEvents(_ events: [NewEvent], settingMeta meta: [String: String?]) async throws -> [StoredEvent] {
        try await withDiskFullRecovery { try await self.appendEventsOnce(events, settingMeta: meta) }
    }

    private func appendEventsOnce(_ events: [NewEvent], settingMeta meta: [String: String?]) async throws -> [StoredEvent] {
        try await write { db in
            let stored = try Self.appendEvents(events, in: db)
            for (key, value) in meta {
                if let value {
                    try db.execute(sql: "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                   arguments: [key, value])
                } else {
                    try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
                }
            }
            return stored
        }
    }
}
