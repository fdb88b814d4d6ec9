#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SQLiteLink

// The event log's SQL, usable inside any transaction of `StationStore.write` (and `read` for
// the fetches). Everything here is synchronous and runs on the pool's writer or reader connection
// (SQLiteLink).
extension StationStore {
    /// Appends `events` with consecutive seqs following the last one ever given out.
    ///
    /// Must run inside a write transaction (`StationStore.write`): the counter update and the
    /// inserts commit or roll back together with whatever else the transaction writes
    /// (a swap, its usage record, its audit line, …). Returns the events as stored.
    static func appendEvents(_ events: [NewEvent], in db: Database) throws -> [StoredEvent] {
        guard db.isInsideTransaction else {
            throw StoreError.other("appendEvents(_:in:) must run inside a write transaction")
        }
        if events.isEmpty { return [] }
        let last = try lastSeq(in: db)
        var stored: [StoredEvent] = []
        stored.reserveCapacity(events.count)
        let insert = try db.cachedStatement(sql: """
            INSERT INTO event (seq, event_id, type, ts_ms, data, sent_at_ms)
            VALUES (?, ?, ?, ?, ?, NULL)
            """)
        var seq = last
        for event in events {
            guard !event.type.isEmpty else { throw StoreError.other("event type must not be empty") }
            seq += 1
            let ms = millis(event.timestamp)
            try insert.execute(arguments: [seq, event.eventID.uuidString.lowercased(), event.type,
                                           ms, Data(event.data)])
            stored.append(StoredEvent(seq: seq, eventID: event.eventID, type: event.type,
                                      timestamp: date(ms), data: event.data, sentAt: nil))
        }
        try db.cachedStatement(sql: "UPDATE event_seq SET last_seq = ? WHERE id = 1").execute(arguments: [seq])
        return stored
    }

    /// The last seq ever given out (0 before the first event).
    static func lastSeq(in db: Database) throws -> Int64 {
        guard let last = try Int64.fetchOne(db.cachedStatement(sql: "SELECT last_seq FROM event_seq WHERE id = 1")) else {
            throw StoreError.corrupt("event_seq has no row")
        }
        return last
    }

    static let eventColumns = "seq, event_id, type, ts_ms, data, sent_at_ms"

    static func fetchEvents(_ db: Database, sql: String, arguments: StatementArguments) throws -> [StoredEvent] {
        try Row.fetchAll(db, sql: sql, arguments: arguments).map(storedEvent(from:))
    }

    static func storedEvent(from row: Row) throws -> StoredEvent {
        let seq: Int64 = row["seq"]
        let idText: String = row["event_id"]
        guard let id = UUID(uuidString: idText) else {
            throw StoreError.corrupt("event \(seq) has a malformed event_id '\(idText)'")
        }
        let data: Data? = row["data"]
        let sent: Int64? = row["sent_at_ms"]
        return StoredEvent(seq: seq, eventID: id, type: row["type"], timestamp: date(row["ts_ms"]),
                           data: data.map { [UInt8]($0) } ?? [], sentAt: sent.map(date))
    }

    static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}
