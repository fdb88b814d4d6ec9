// SQLiteLink: the only Swift that touches the SQLite C API (Sources/CSQLite). A thin layer shaped like the part of
// GRDB the station store used (issue 13: GRDB pulled in full Foundation and ICU): a connection (`Database`) with
// its statements and rows, the serialized owners of connections (`DatabaseQueue`, `DatabasePool` in WAL, behind
// `DatabaseWriter`), transactions and named migrations kept in GRDB's `grdb_migrations` table.
//
// This file: result codes and errors, the connection, statements, fetching.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import CSQLite

/// An SQLite result code, primary (`SQLITE_CONSTRAINT`) or extended (`SQLITE_CONSTRAINT_UNIQUE`).
public struct ResultCode: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: CInt
    public init(rawValue: CInt) { self.rawValue = rawValue }

    /// The primary code of an extended one (its low byte).
    public var primaryResultCode: ResultCode { ResultCode(rawValue: rawValue & 0xFF) }

    /// `19 (constraint failed)`, as GRDB prints it.
    public var description: String {
        guard let text = sqlite3_errstr(rawValue) else { return "\(rawValue)" }
        return "\(rawValue) (\(String(cString: text)))"
    }

    /// A primary pattern matches every extended code of it; an extended pattern only itself (GRDB's `~=`).
    public static func ~= (pattern: ResultCode, code: ResultCode) -> Bool {
        pattern == pattern.primaryResultCode ? pattern == code.primaryResultCode : pattern == code
    }

    public static let SQLITE_OK = ResultCode(rawValue: 0)
    public static let SQLITE_ERROR = ResultCode(rawValue: 1)
    public static let SQLITE_INTERNAL = ResultCode(rawValue: 2)
    public static let SQLITE_PERM = ResultCode(rawValue: 3)
    public static let SQLITE_ABORT = ResultCode(rawValue: 4)
    public static let SQLITE_BUSY = ResultCode(rawValue: 5)
    public static let SQLITE_LOCKED = ResultCode(rawValue: 6)
    public static let SQLITE_NOMEM = ResultCode(rawValue: 7)
    public static let SQLITE_READONLY = ResultCode(rawValue: 8)
    public static let SQLITE_INTERRUPT = ResultCode(rawValue: 9)
    public static let SQLITE_IOERR = ResultCode(rawValue: 10)
    public static let SQLITE_CORRUPT = ResultCode(rawValue: 11)
    public static let SQLITE_FULL = ResultCode(rawValue: 13)
    public static let SQLITE_CANTOPEN = ResultCode(rawValue: 14)
    public static let SQLITE_SCHEMA = ResultCode(rawValue: 17)
    public static let SQLITE_TOOBIG = ResultCode(rawValue: 18)
    public static let SQLITE_CONSTRAINT = ResultCode(rawValue: 19)
    public static let SQLITE_MISMATCH = ResultCode(rawValue: 20)
    public static let SQLITE_MISUSE = ResultCode(rawValue: 21)
    public static let SQLITE_RANGE = ResultCode(rawValue: 25)
    public static let SQLITE_NOTADB = ResultCode(rawValue: 26)
    // Extended codes (sqlite3.h: primary | n << 8).
    public static let SQLITE_IOERR_SHMSIZE = ResultCode(rawValue: 10 | 19 << 8)
    public static let SQLITE_CONSTRAINT_CHECK = ResultCode(rawValue: 19 | 1 << 8)
    public static let SQLITE_CONSTRAINT_FOREIGNKEY = ResultCode(rawValue: 19 | 3 << 8)
    public static let SQLITE_CONSTRAINT_NOTNULL = ResultCode(rawValue: 19 | 5 << 8)
    public static let SQLITE_CONSTRAINT_PRIMARYKEY = ResultCode(rawValue: 19 | 6 << 8)
    public static let SQLITE_CONSTRAINT_TRIGGER = ResultCode(rawValue: 19 | 7 << 8)
    public static let SQLITE_CONSTRAINT_UNIQUE = ResultCode(rawValue: 19 | 8 << 8)
}

/// An error SQLite reported: its code, `sqlite3_errmsg`, and the SQL that failed (if a statement did).
public struct DatabaseError: Error, Sendable, CustomStringConvertible {
    public let extendedResultCode: ResultCode
    public let message: String?
    public let sql: String?

    public init(resultCode: ResultCode = .SQLITE_ERROR, message: String? = nil, sql: String? = nil) {
        self.extendedResultCode = resultCode
        self.message = message
        self.sql = sql
    }

    public var resultCode: ResultCode { extendedResultCode.primaryResultCode }

    /// `SQLite error 19: UNIQUE constraint failed: t.id - while executing `INSERT …``, as GRDB.
    public var description: String {
        var text = "SQLite error \(resultCode.rawValue)"
        if let message { text += ": \(message)" }
        if let sql { text += " - while executing `\(sql.trimmingWhitespace())`" }
        return text
    }
}

extension String {
    func trimmingWhitespace() -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !$0.properties.isWhitespace }),
              let last = scalars.lastIndex(where: { !$0.properties.isWhitespace }) else { return "" }
        return String(scalars[first...last])
    }
}

/// SQLite's "copy the bytes now" destructor (`SQLITE_TRANSIENT`, a macro Swift does not import).
nonisolated(unsafe) private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// One SQLite connection. Not thread-safe by itself: only its owner (`DatabaseQueue`, `DatabasePool`) hands it
/// to one closure at a time.
public final class Database {
    public let path: String
    public let configuration: Configuration
    let handle: OpaquePointer
    private var statementCache: [String: Statement] = [:]

    /// How `inTransaction` begins (`BEGIN DEFERRED|IMMEDIATE|EXCLUSIVE`).
    public enum TransactionKind: String, Sendable {
        case deferred = "DEFERRED", immediate = "IMMEDIATE", exclusive = "EXCLUSIVE"
    }

    public enum TransactionCompletion: Sendable { case commit, rollback }

    /// `sqlite3_wal_checkpoint_v2` modes.
    public enum CheckpointMode: CInt, Sendable {
        case passive = 0, full = 1, restart = 2, truncate = 3
    }

    /// Opens `path` (a file, `:memory:`, or a `file:` URI) and sets the connection up as GRDB does: extended
    /// result codes, no double-quoted string literals, the busy mode, foreign keys, then the configuration's
    /// `prepareDatabase` closures.
    init(path: String, configuration: Configuration) throws {
        var flags = configuration.readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI   // serialized by our owner; `file:…?immutable=1` paths
        var db: OpaquePointer?
        let code = sqlite3_open_v2(path, &db, flags, nil)
        guard code == SQLITE_OK, let db else {
            let message = db.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) }
                ?? sqlite3_errstr(code).map { String(cString: $0) }
            let extended = db.map { sqlite3_extended_errcode($0) } ?? code
            sqlite3_close_v2(db)
            throw DatabaseError(resultCode: ResultCode(rawValue: extended), message: message)
        }
        self.handle = db
        self.path = path
        self.configuration = configuration
        do {
            try check(sqlite3_extended_result_codes(db, 1))
            // No double-quoted string literals (GRDB turned them off too): `"x"` names a column or fails.
            try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_DQS_DML, 0, nil))
            try check(csqlite_db_config_int(db, SQLITE_DBCONFIG_DQS_DDL, 0, nil))
            switch configuration.busyMode {
            case .immediateError: break
            case .timeout(let seconds):
                try check(sqlite3_busy_timeout(db, CInt(clamping: Int((seconds * 1000).rounded()))))
            }
            if configuration.foreignKeysEnabled { try execute(sql: "PRAGMA foreign_keys = ON") }
            for setup in configuration.setups { try setup(self) }
        } catch {
            close()
            throw error
        }
    }

    /// Finalizes the cached statements and closes the connection (`sqlite3_close_v2`: a statement still held
    /// elsewhere closes it when finalized).
    func close() {
        statementCache.removeAll()
        sqlite3_close_v2(handle)
    }

    // MARK: Errors

    /// The error of a failed call that returned `code`, with the connection's extended code and message.
    func error(_ code: CInt, sql: String? = nil) -> DatabaseError {
        let extended = sqlite3_extended_errcode(handle)
        return DatabaseError(resultCode: ResultCode(rawValue: extended & 0xFF == code & 0xFF ? extended : code),
                             message: String(cString: sqlite3_errmsg(handle)), sql: sql)
    }

    func check(_ code: CInt, sql: String? = nil) throws {
        if code != SQLITE_OK { throw error(code, sql: sql) }
    }

    // MARK: Statements

    /// Runs every statement of `sql` in order (a migration's script), with `arguments` consumed left to right:
    /// each statement takes as many as it has parameters; arguments left over are an error, as in GRDB.
    public func execute(sql: String, arguments: StatementArguments = StatementArguments()) throws {
        var remaining = arguments.values[...]
        let utf8 = Array(sql.utf8CString)
        try utf8.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            var cursor = base
            while cursor.pointee != 0 {
                var stmt: OpaquePointer?
                var tail: UnsafePointer<CChar>?
                let code = sqlite3_prepare_v2(handle, cursor, -1, &stmt, &tail)
                let text = String(cString: cursor)
                guard code == SQLITE_OK else { throw error(code, sql: text) }
                guard let stmt else { break }   // only whitespace or comments left
                let statement = Statement(handle: stmt, database: self,
                                          sql: String(cString: sqlite3_sql(stmt)))
                let count = Int(sqlite3_bind_parameter_count(stmt))
                guard remaining.count >= count else {
                    throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "wrong number of statement arguments: \(arguments.values.count)", sql: sql)
                }
                try statement.execute(values: Array(remaining.prefix(count)))
                remaining = remaining.dropFirst(count)
                guard let tail else { break }
                cursor = tail
            }
        }
        if !remaining.isEmpty {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "wrong number of statement arguments: \(arguments.values.count)", sql: sql)
        }
    }

    /// A new prepared statement for one SQL statement.
    public func makeStatement(sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        var tail: UnsafePointer<CChar>?
        let code = sql.withCString { sqlite3_prepare_v2(handle, $0, -1, &stmt, &tail) }
        guard code == SQLITE_OK else { throw error(code, sql: sql) }
        guard let stmt else { throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "empty statement", sql: sql) }
        let statement = Statement(handle: stmt, database: self, sql: sql)
        if let tail, tail.pointee != 0, !String(cString: tail).trimmingWhitespace().isEmpty {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "multiple statements found", sql: sql)
        }
        return statement
    }

    /// A prepared statement kept for the connection's lifetime, keyed by its SQL text.
    public func cachedStatement(sql: String) throws -> Statement {
        if let statement = statementCache[sql] { return statement }
        let statement = try makeStatement(sql: sql)
        statementCache[sql] = statement
        return statement
    }

    // MARK: State

    /// Rows changed by the last INSERT, UPDATE or DELETE (`sqlite3_changes`).
    public var changesCount: Int { Int(sqlite3_changes(handle)) }
    /// Rows changed since the connection was opened (`sqlite3_total_changes`).
    public var totalChangesCount: Int { Int(sqlite3_total_changes(handle)) }
    public var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }
    public var isInsideTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }

    public func tableExists(_ name: String) throws -> Bool {
        try Bool.fetchOne(self, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?)",
                          arguments: [name]) ?? false
    }

    // MARK: Transactions

    /// Runs `operations` between `BEGIN` and `COMMIT` (or `ROLLBACK` if it says so). If it throws, or the
    /// commit fails, the transaction is rolled back and the error rethrown.
    public func inTransaction(_ kind: TransactionKind = .deferred,
                              _ operations: () throws -> TransactionCompletion) throws {
        try execute(sql: "BEGIN \(kind.rawValue) TRANSACTION")
        let completion: TransactionCompletion
        do {
            completion = try operations()
        } catch {
            rollbackIfNeeded()
            throw error
        }
        switch completion {
        case .commit:
            do {
                try execute(sql: "COMMIT TRANSACTION")
            } catch {
                rollbackIfNeeded()
                throw error
            }
        case .rollback:
            try execute(sql: "ROLLBACK TRANSACTION")
        }
    }

    /// Rolls back what SQLite did not already roll back itself (it does after some errors, e.g. SQLITE_FULL).
    private func rollbackIfNeeded() {
        if isInsideTransaction { try? execute(sql: "ROLLBACK TRANSACTION") }
    }

    /// `sqlite3_wal_checkpoint_v2` on the main database.
    @discardableResult
    public func checkpoint(_ mode: CheckpointMode = .passive) throws -> (walFrameCount: Int, checkpointedFrameCount: Int) {
        var log: CInt = -1, done: CInt = -1
        try check(sqlite3_wal_checkpoint_v2(handle, "main", mode.rawValue, &log, &done))
        return (Int(log), Int(done))
    }
}

/// A prepared statement, finalized when released.
public final class Statement {
    let handle: OpaquePointer
    unowned let database: Database
    public let sql: String

    init(handle: OpaquePointer, database: Database, sql: String) {
        self.handle = handle
        self.database = database
        self.sql = sql
    }

    deinit { sqlite3_finalize(handle) }

    /// Runs the statement to its end with `arguments` (rows it returns are ignored).
    public func execute(arguments: StatementArguments = StatementArguments()) throws {
        try execute(values: arguments.values)
    }

    func execute(values: [DatabaseValue]) throws {
        try bind(values)
        defer { sqlite3_reset(handle) }
        while true {
            let code = sqlite3_step(handle)
            if code == SQLITE_DONE { return }
            if code != SQLITE_ROW { throw database.error(code, sql: sql) }
        }
    }

    /// Resets the statement and binds `values` to parameters 1…n (n must be the statement's parameter count).
    func bind(_ values: [DatabaseValue]) throws {
        sqlite3_reset(handle)   // its result is the last step's, reported there
        try database.check(sqlite3_clear_bindings(handle), sql: sql)
        let count = Int(sqlite3_bind_parameter_count(handle))
        guard values.count == count else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE,
                                message: "wrong number of statement arguments: \(values.count), expected \(count)", sql: sql)
        }
        for (i, value) in values.enumerated() {
            let index = CInt(i + 1)
            let code: CInt
            switch value.storage {
            case .null: code = sqlite3_bind_null(handle, index)
            case .int64(let v): code = sqlite3_bind_int64(handle, index, v)
            case .double(let v): code = sqlite3_bind_double(handle, index, v)
            case .string(let v):
                code = v.withCString { sqlite3_bind_text(handle, index, $0, CInt(v.utf8.count), transient) }
            case .blob(let v):
                code = v.withUnsafeBytes { bytes in
                    guard let base = bytes.baseAddress, !bytes.isEmpty else { return sqlite3_bind_zeroblob(handle, index, 0) }
                    return sqlite3_bind_blob(handle, index, base, CInt(bytes.count), transient)
                }
            }
            try database.check(code, sql: sql)
        }
    }

    /// Steps once: true with a row to read, false at the end.
    func step() throws -> Bool {
        let code = sqlite3_step(handle)
        if code == SQLITE_ROW { return true }
        if code == SQLITE_DONE { return false }
        throw database.error(code, sql: sql)
    }

    var columnNames: [String] {
        (0..<sqlite3_column_count(handle)).map { String(cString: sqlite3_column_name(handle, $0)) }
    }

    func value(at column: CInt) -> DatabaseValue {
        switch sqlite3_column_type(handle, column) {
        case SQLITE_INTEGER: return DatabaseValue(storage: .int64(sqlite3_column_int64(handle, column)))
        case SQLITE_FLOAT: return DatabaseValue(storage: .double(sqlite3_column_double(handle, column)))
        case SQLITE_TEXT:
            guard let text = sqlite3_column_text(handle, column) else { return DatabaseValue(storage: .string("")) }
            let count = Int(sqlite3_column_bytes(handle, column))
            return DatabaseValue(storage: .string(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self)))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(handle, column))
            guard let bytes = sqlite3_column_blob(handle, column), count > 0 else { return DatabaseValue(storage: .blob(Data())) }
            return DatabaseValue(storage: .blob(Data(bytes: bytes, count: count)))
        default: return .null
        }
    }

    func row(names: [String]) -> Row {
        Row(columnNames: names, databaseValues: (0..<CInt(names.count)).map(value(at:)))
    }
}

// MARK: Fetching

/// Values of a query, one per `next()`; the statement is reset when the cursor ends or is released.
public final class DatabaseCursor<Element> {
    private let statement: Statement
    private let decode: (Statement) -> Element
    private var done = false

    init(statement: Statement, arguments: StatementArguments, decode: @escaping (Statement) -> Element) throws {
        self.statement = statement
        self.decode = decode
        try statement.bind(arguments.values)
    }

    deinit { if !done { sqlite3_reset(statement.handle) } }

    public func next() throws -> Element? {
        if done { return nil }
        do {
            if try statement.step() { return decode(statement) }
        } catch {
            done = true
            sqlite3_reset(statement.handle)
            throw error
        }
        done = true
        sqlite3_reset(statement.handle)
        return nil
    }
}

extension DatabaseValueConvertible {
    /// The first column of each row. NULL in a row is a programmer error (use `Optional`'s fetch in GRDB; here a trap).
    public static func fetchCursor(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> DatabaseCursor<Self> {
        try DatabaseCursor(statement: statement, arguments: arguments) { Row.decode($0.value(at: 0), column: "0") }
    }

    public static func fetchCursor(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> DatabaseCursor<Self> {
        try fetchCursor(db.makeStatement(sql: sql), arguments: arguments)
    }

    public static func fetchAll(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> [Self] {
        let cursor = try fetchCursor(statement, arguments: arguments)
        var all: [Self] = []
        while let value = try cursor.next() { all.append(value) }
        return all
    }

    public static func fetchAll(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Self] {
        try fetchAll(db.makeStatement(sql: sql), arguments: arguments)
    }

    /// The first column of the first row; nil if there is no row or it holds NULL.
    public static func fetchOne(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> Self? {
        let cursor = try DatabaseCursor(statement: statement, arguments: arguments) { $0.value(at: 0) }
        guard let value = try cursor.next() else { return nil }
        return Row.decodeIfPresent(value, column: "0")
    }

    public static func fetchOne(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Self? {
        try fetchOne(db.makeStatement(sql: sql), arguments: arguments)
    }
}

extension Row {
    public static func fetchCursor(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> DatabaseCursor<Row> {
        let names = statement.columnNames
        return try DatabaseCursor(statement: statement, arguments: arguments) { $0.row(names: names) }
    }

    public static func fetchCursor(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> DatabaseCursor<Row> {
        try fetchCursor(db.makeStatement(sql: sql), arguments: arguments)
    }

    public static func fetchAll(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        let cursor = try fetchCursor(statement, arguments: arguments)
        var all: [Row] = []
        while let row = try cursor.next() { all.append(row) }
        return all
    }

    public static func fetchAll(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try fetchAll(db.makeStatement(sql: sql), arguments: arguments)
    }

    public static func fetchOne(_ statement: Statement, arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try fetchCursor(statement, arguments: arguments).next()
    }

    public static func fetchOne(_ db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try fetchOne(db.makeStatement(sql: sql), arguments: arguments)
    }
}
