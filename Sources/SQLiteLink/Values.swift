// Values in and out of SQLite: DatabaseValue, the types that convert to and from it, statement arguments, rows.
// Names and conversions are GRDB's (GRDB/Core/DatabaseValue.swift, StandardLibrary.swift, Row.swift).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One SQLite value: NULL, INTEGER, REAL, TEXT or BLOB.
public struct DatabaseValue: Hashable, Sendable, CustomStringConvertible {
    public enum Storage: Hashable, Sendable {
        case null
        case int64(Int64)
        case double(Double)
        case string(String)
        case blob(Data)
    }

    public let storage: Storage

    public init(storage: Storage) { self.storage = storage }

    public static let null = DatabaseValue(storage: .null)

    public var isNull: Bool { storage == .null }

    /// As GRDB prints it (a Row's description is made of these).
    public var description: String {
        switch storage {
        case .null: return "NULL"
        case .int64(let v): return String(v)
        case .double(let v): return String(v)
        case .string(let v): return String(reflecting: v)
        case .blob(let v): return "Data(\(v.description))"
        }
    }
}

/// A type stored in one column. Conversions from the database are GRDB's: integers from INTEGER and (truncated,
/// in range) REAL, `Double` from INTEGER and REAL, `Bool` from a non-zero number, `String` from TEXT only,
/// `Data` from BLOB and TEXT (its UTF-8 bytes). NULL converts to nothing but an optional.
public protocol DatabaseValueConvertible: Sendable {
    var databaseValue: DatabaseValue { get }
    /// nil when the value cannot be represented by `Self` (NULL included).
    static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Self?
}

extension DatabaseValue: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { self }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> DatabaseValue? { dbValue }
}

extension Int64: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .int64(self)) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Int64? {
        switch dbValue.storage {
        case .int64(let v): return v
        case .double(let v):
            guard v >= Double(Int64.min), v < Double(Int64.max) else { return nil }
            return Int64(v)
        default: return nil
        }
    }
}

extension Int: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .int64(Int64(self))) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Int? {
        Int64.fromDatabaseValue(dbValue).flatMap { Int(exactly: $0) }
    }
}

extension Int32: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .int64(Int64(self))) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Int32? {
        Int64.fromDatabaseValue(dbValue).flatMap { Int32(exactly: $0) }
    }
}

extension Double: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .double(self)) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Double? {
        switch dbValue.storage {
        case .int64(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
}

extension Bool: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .int64(self ? 1 : 0)) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Bool? {
        switch dbValue.storage {
        case .int64(let v): return v != 0
        case .double(let v): return v != 0
        default: return nil
        }
    }
}

extension String: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .string(self)) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> String? {
        if case .string(let v) = dbValue.storage { return v }
        return nil
    }
}

extension Data: DatabaseValueConvertible {
    public var databaseValue: DatabaseValue { DatabaseValue(storage: .blob(self)) }
    public static func fromDatabaseValue(_ dbValue: DatabaseValue) -> Data? {
        switch dbValue.storage {
        case .blob(let v): return v
        case .string(let v): return Data(v.utf8)
        default: return nil
        }
    }
}

/// Positional arguments of a statement (`?`, `?NNN`): `[a, b, nil]`. A nil element binds NULL.
public struct StatementArguments: Sendable, ExpressibleByArrayLiteral, CustomStringConvertible {
    public var values: [DatabaseValue]

    public init() { values = [] }

    public init(arrayLiteral elements: (any DatabaseValueConvertible)?...) {
        self.init(elements)
    }

    public init<S: Sequence>(_ sequence: S) where S.Element == (any DatabaseValueConvertible)? {
        values = sequence.map { $0?.databaseValue ?? .null }
    }

    public init<S: Sequence>(_ sequence: S) where S.Element: DatabaseValueConvertible {
        values = sequence.map(\.databaseValue)
    }

    public var isEmpty: Bool { values.isEmpty }

    public mutating func append(contentsOf other: StatementArguments) { values += other.values }

    public static func + (lhs: StatementArguments, rhs: StatementArguments) -> StatementArguments {
        var result = lhs
        result.append(contentsOf: rhs)
        return result
    }

    public static func += (lhs: inout StatementArguments, rhs: StatementArguments) { lhs.append(contentsOf: rhs) }

    public var description: String { "[" + values.map(\.description).joined(separator: ", ") + "]" }
}

/// `?,?,?` for an `IN (…)` list of `count` arguments.
public func databaseQuestionMarks(count: Int) -> String {
    Array(repeating: "?", count: count).joined(separator: ",")
}

/// One fetched row: its values, copied out of the statement, and its column names.
///
/// Typed subscripts as in GRDB: a column by index or by name (case-insensitive, first match). A non-optional
/// result from NULL, from a value of another type or from a missing column is a programmer error (a trap, as in
/// GRDB); the optional variants give nil for NULL and for a missing column, and trap on a type mismatch.
public struct Row: Sendable, Equatable, CustomStringConvertible {
    public let columnNames: [String]
    public let databaseValues: [DatabaseValue]

    public init(columnNames: [String], databaseValues: [DatabaseValue]) {
        precondition(columnNames.count == databaseValues.count, "a row needs one name per value")
        self.columnNames = columnNames
        self.databaseValues = databaseValues
    }

    public var count: Int { databaseValues.count }

    public func index(forColumn name: String) -> Int? {
        if let i = columnNames.firstIndex(of: name) { return i }
        let lower = name.lowercased()
        return columnNames.firstIndex { $0.lowercased() == lower }
    }

    public func hasColumn(_ name: String) -> Bool { index(forColumn: name) != nil }

    public subscript<Value: DatabaseValueConvertible>(_ index: Int) -> Value {
        Self.decode(databaseValues[index], column: columnNames[index])
    }

    public subscript<Value: DatabaseValueConvertible>(_ index: Int) -> Value? {
        Self.decodeIfPresent(databaseValues[index], column: columnNames[index])
    }

    public subscript<Value: DatabaseValueConvertible>(_ name: String) -> Value {
        guard let i = index(forColumn: name) else { fatalError("no such column in row: \(name) in \(self)") }
        return Self.decode(databaseValues[i], column: name)
    }

    public subscript<Value: DatabaseValueConvertible>(_ name: String) -> Value? {
        guard let i = index(forColumn: name) else { return nil }
        return Self.decodeIfPresent(databaseValues[i], column: name)
    }

    static func decode<Value: DatabaseValueConvertible>(_ dbValue: DatabaseValue, column: String) -> Value {
        guard let value = Value.fromDatabaseValue(dbValue) else {
            fatalError("could not decode \(Value.self) from \(dbValue) in column \(column)")
        }
        return value
    }

    static func decodeIfPresent<Value: DatabaseValueConvertible>(_ dbValue: DatabaseValue, column: String) -> Value? {
        if dbValue.isNull { return nil }
        return decode(dbValue, column: column) as Value
    }

    /// `[name:value name:value]`, as GRDB prints a row (strings quoted, NULL as NULL).
    public var description: String {
        "[" + zip(columnNames, databaseValues).map { "\($0):\($1)" }.joined(separator: " ") + "]"
    }
}
