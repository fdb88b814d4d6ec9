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

    /// A row of `SELECT \(eventColumns)`. Columns by position (in `eventColumns`' order), not by name: this runs for
    /// every event the publisher reads, and a lookup by name compares the names case-insensitively.
    static func storedEvent(from row: Row) throws -> StoredEvent {
        let seq: Int64 = row[0]
        let idText: String = row[1]
        guard let id = parseEventID(idText) else {
            throw StoreError.corrupt("event \(seq) has a malformed event_id '\(idText)'")
        }
        let data: Data? = row[4]
        let sent: Int64? = row[5]
        return StoredEvent(seq: seq, eventID: id, type: row[2], timestamp: date(row[3]),
                           data: data.map { [UInt8]($0) } ?? [], sentAt: sent.map(date))
    }

    /// `UUID(uuidString:)`, with the form we store (36 characters, 8-4-4-4-12 hex digits, either case) parsed here:
    /// FoundationEssentials parses with sscanf, about 1 µs an event on the publisher's read. Anything else goes to
    /// `UUID(uuidString:)` itself, so what is accepted and what is refused does not change.
    static func parseEventID(_ text: String) -> UUID? {
        var text = text
        if let id = text.withUTF8({ parseCanonicalUUID($0) }) { return id }
        return UUID(uuidString: text)
    }

    static func parseCanonicalUUID(_ s: UnsafeBufferPointer<UInt8>) -> UUID? {
        guard s.count == 36, s[8] == 0x2D, s[13] == 0x2D, s[18] == 0x2D, s[23] == 0x2D else { return nil }
        @inline(__always) func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 0x30...0x39: return c &- 0x30
            case 0x61...0x66: return c &- 0x61 &+ 10
            case 0x41...0x46: return c &- 0x41 &+ 10
            default: return nil
            }
        }
        var uuid: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let ok = withUnsafeMutableBytes(of: &uuid) { out -> Bool in
            var i = 0
            for k in 0 ..< 16 {
                if i == 8 || i == 13 || i == 18 || i == 23 { i += 1 }
                guard let hi = nibble(s[i]), let lo = nibble(s[i + 1]) else { return false }
                out[k] = hi << 4 | lo
                i += 2
            }
            return true
        }
        return ok ? UUID(uuid: uuid) : nil
    }

    static func millis(_ date: Date) -> Int64 {
        Int64((date.timeIntervalSince1970 * 1000).rounded())
    }

    static func date(_ millis: Int64) -> Date {
        Date(timeIntervalSince1970: Double(millis) / 1000)
    }
}
