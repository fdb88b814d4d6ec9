#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// An event the daemon wants recorded. The store gives it its `seq`.
public struct NewEvent: Sendable {
    /// Event type, e.g. `swap.completed` (see abs-mqtt.md). Must not be empty.
    public var type: String
    /// When it happened. Stored to the millisecond (the wire format's precision).
    public var timestamp: Date
    /// The event's `data` object as JSON bytes. Opaque to the store.
    public var data: [UInt8]
    /// Stable identity for duplicate detection at ABS. Unique in the log.
    public var eventID: UUID

    public init(type: String, timestamp: Date, data: [UInt8], eventID: UUID = UUID()) {
        self.type = type
        self.timestamp = timestamp
        self.data = data
        self.eventID = eventID
    }
}

/// An event as recorded in the durable log.
public struct StoredEvent: Sendable, Equatable {
    /// Rises by one for every event this station ever recorded; never reused, never skipped.
    public let seq: Int64
    public let eventID: UUID
    public let type: String
    /// Millisecond precision (what was stored, not what was passed in).
    public let timestamp: Date
    public let data: [UInt8]
    /// When the broker acknowledged it (PUBACK); nil while it still has to be sent.
    public let sentAt: Date?

    public init(seq: Int64, eventID: UUID, type: String, timestamp: Date, data: [UInt8], sentAt: Date?) {
        self.seq = seq
        self.eventID = eventID
        self.type = type
        self.timestamp = timestamp
        self.data = data
        self.sentAt = sentAt
    }
}

public struct EventLogStats: Sendable {
    /// Rows in the log (sent and unsent).
    public let total: Int
    /// Rows not yet acknowledged by the broker.
    public let unsent: Int
    /// The last seq ever given out (0 before the first event), even if retention deleted that row.
    public let lastSeq: Int64
    /// Timestamp of the unsent event with the lowest seq (the head of the send queue), nil if none.
    public let oldestUnsentTimestamp: Date?
    /// Size on disk of the database file plus its write-ahead log.
    public let fileBytes: Int64

    public init(total: Int, unsent: Int, lastSeq: Int64, oldestUnsentTimestamp: Date?, fileBytes: Int64) {
        self.total = total
        self.unsent = unsent
        self.lastSeq = lastSeq
        self.oldestUnsentTimestamp = oldestUnsentTimestamp
        self.fileBytes = fileBytes
    }
}

/// What `applyRetention` may delete. Only *sent* events are ever deleted.
public struct RetentionPolicy: Sendable {
    /// Sent events older than this many days (counted from `sentAt`) are deleted.
    /// `.infinity` disables the age rule.
    public var keepSentDays: Double
    /// At most this many sent events are kept; the oldest (lowest seq) go first.
    public var maxSentRows: Int

    public init(keepSentDays: Double = 7, maxSentRows: Int = 200_000) {
        self.keepSentDays = keepSentDays
        self.maxSentRows = maxSentRows
    }
}

/// Errors of the store. SQLite errors are mapped to these; errors thrown by the body of
/// `write`/`read` that are not SQLite errors are passed through unchanged.
public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// SQLITE_FULL: the disk (or the configured page limit) is full. Nothing of the failed
    /// transaction was written; everything recorded before is intact.
    case diskFull
    /// SQLITE_READONLY: the database file or its directory cannot be written.
    case readOnly
    /// SQLITE_CORRUPT or SQLITE_NOTADB, or a broken invariant found in the data.
    case corrupt(String)
    /// SQLITE_IOERR or SQLITE_CANTOPEN.
    case io(String)
    /// Anything else (constraint violations, misuse, a closed store, …).
    case other(String)

    public var description: String {
        switch self {
        case .diskFull: return "station database: disk full (SQLITE_FULL), nothing of the failed write was recorded"
        case .readOnly: return "station database: read-only (SQLITE_READONLY)"
        case .corrupt(let m): return "station database corrupt: \(m)"
        case .io(let m): return "station database I/O error: \(m)"
        case .other(let m): return "station database error: \(m)"
        }
    }
}
