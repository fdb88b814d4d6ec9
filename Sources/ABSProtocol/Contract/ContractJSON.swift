#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// The one JSON writing path of the station's outbound contract (abs-mqtt.md): every event, reply, status,
// inventory and telemetry payload is an `Encodable` value of this folder, turned into a `JSONValue` tree by
// `ContractEncoder` and written by `JSONValue.write(into:)`:
//   - object keys sorted (the order Foundation's JSONSerialization `.sortedKeys` gives, so the wire bytes of the
//     station did not change when the dictionaries went: byte order for keys of `a`–`z` and `_`, which is every
//     contract key; a case-insensitive, numeric comparison otherwise);
//   - strings escaped as JSONSerialization does (`\"`, `\\`, `\n`, `\r`, `\t`, `\b`, `\f`, other control
//     characters `\u00XX`; `/` and non-ASCII as they are);
//   - integers as integers; a Double as its shortest round-trip form without a trailing `.0` (`80`, `54.1`,
//     `1e+20`); a non-finite Double as `null`;
//   - a `Date` as RFC 3339 UTC with milliseconds (StationSupport's `RFC3339`, the project's one formatter).

/// A JSON value as the contract writes it.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])
    /// Bytes that already are one JSON value (a stored event's `data`), written as they are.
    case raw([UInt8])
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByFloatLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
    public init(nilLiteral: ()) { self = .null }
}

extension JSONValue: Encodable {
    /// With `ContractEncoder` the value is taken as it is; another encoder gets its plain JSON shape.
    public func encode(to encoder: Encoder) throws {
        if let e = encoder as? ContractEncoder.Node { e.set(self); return }
        switch self {
        case .null: var c = encoder.singleValueContainer(); try c.encodeNil()
        case let .bool(b): var c = encoder.singleValueContainer(); try c.encode(b)
        case let .int(i): var c = encoder.singleValueContainer(); try c.encode(i)
        case let .double(d): var c = encoder.singleValueContainer(); try c.encode(d)
        case let .string(s): var c = encoder.singleValueContainer(); try c.encode(s)
        case let .array(a): var c = encoder.unkeyedContainer(); for v in a { try c.encode(v) }
        case let .object(o):
            var c = encoder.container(keyedBy: ContractKey.self)
            for (k, v) in o { try c.encode(v, forKey: ContractKey(k)) }
        case let .raw(bytes): var c = encoder.singleValueContainer(); try c.encode(String(decoding: bytes, as: UTF8.self))
        }
    }
}

/// A coding key written as given: `c.encode(x, forKey: "slot")`.
public struct ContractKey: CodingKey, ExpressibleByStringLiteral, Hashable, Sendable {
    public let stringValue: String
    public init(_ s: String) { stringValue = s }
    public init(stringLiteral value: String) { stringValue = value }
    public init?(stringValue: String) { self.stringValue = stringValue }
    public var intValue: Int? { nil }
    public init?(intValue: Int) { stringValue = String(intValue) }
}

extension KeyedEncodingContainer {
    /// `null` when nil (the contract writes some absent values as null rather than leaving the key out).
    public mutating func encodeNullable<T: Encodable>(_ value: T?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) } else { try encodeNil(forKey: key) }
    }
}

/// The contract's JSON: `encode` to bytes, `value` to a tree, `round` for measurements.
public enum ContractJSON {
    /// The value's JSON bytes (`{}` if the value's own encoding throws, which the contract's types never do).
    public static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        self.value(value).write(into: &out)
        return out
    }

    /// The same, as a String (audit details, the control API's embedded JSON).
    public static func string<T: Encodable>(_ value: T) -> String { String(decoding: encode(value), as: UTF8.self) }

    /// The value as a tree (telemetry by exception compares and trims it before writing).
    public static func value<T: Encodable>(_ value: T) -> JSONValue {
        (try? ContractEncoder.encode(value)) ?? .object([:])
    }

    /// Rounds to `digits` fractional digits so payloads do not carry float noise (54.120000000000005).
    public static func round(_ v: Double, _ digits: Int = 1) -> Double {
        // pow(10, digits) without libm: exact (10^k is exact in a Double up to k = 22; 1/10^k is rounded once).
        var p = 1.0
        for _ in 0 ..< abs(digits) { p *= 10 }
        if digits < 0 { p = 1 / p }
        return (v * p).rounded() / p
    }
}

// MARK: - Writing

extension JSONValue {
    public func write(into out: inout [UInt8]) {
        switch self {
        case .null: out.append(contentsOf: "null".utf8)
        case let .bool(b): out.append(contentsOf: (b ? "true" : "false").utf8)
        case let .int(i): out.append(contentsOf: String(i).utf8)
        case let .double(d): Self.writeNumber(d, into: &out)
        case let .string(s): Self.writeString(s, into: &out)
        case let .array(a):
            out.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                v.write(into: &out)
            }
            out.append(UInt8(ascii: "]"))
        case let .object(o):
            out.append(UInt8(ascii: "{"))
            for (i, k) in o.keys.sorted(by: Self.keyPrecedes).enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                Self.writeString(k, into: &out)
                out.append(UInt8(ascii: ":"))
                o[k]!.write(into: &out)
            }
            out.append(UInt8(ascii: "}"))
        case let .raw(bytes): out.append(contentsOf: bytes.isEmpty ? Array("{}".utf8) : bytes)
        }
    }

    public var bytes: [UInt8] { var out: [UInt8] = []; write(into: &out); return out }

    /// Shortest round-trip form, without a trailing `.0`; non-finite → null.
    static func writeNumber(_ d: Double, into out: inout [UInt8]) {
        guard d.isFinite else { out.append(contentsOf: "null".utf8); return }
        var s = d.description
        if s.hasSuffix(".0") { s.removeLast(2) }
        out.append(contentsOf: s.utf8)
    }

    static func writeString(_ s: String, into out: inout [UInt8]) {
        out.append(0x22)
        var s = s
        s.withUTF8 { utf8 in
            // Nothing to escape (the common case: ids, types, times): the bytes in one copy.
            if !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) {
                out.append(contentsOf: utf8)
            } else {
                writeEscaped(utf8, into: &out)
            }
        }
        out.append(0x22)
    }

    private static func writeEscaped(_ utf8: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        for b in utf8 {
            switch b {
            case 0x22: out.append(0x5C); out.append(0x22)
            case 0x5C: out.append(0x5C); out.append(0x5C)
            case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
            case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
            case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
            case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
            case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
            case 0x00 ..< 0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [0x5C, UInt8(ascii: "u"), 0x30, 0x30, hex[Int(b >> 4)], hex[Int(b & 0xF)]])
            default: out.append(b)
            }
        }
    }

    /// JSONSerialization's `.sortedKeys` order: case-insensitive, numeric, forced. For keys made only of `a`–`z` and
    /// `_` (every key of the contract) that is plain byte order; other keys (cabinet ids, battery families) go
    /// through `SortedKeyOrder`, Foundation's comparison written out (no ICU).
    static func keyPrecedes(_ a: String, _ b: String) -> Bool {
        func plain(_ s: String) -> Bool { s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F } }
        if plain(a) && plain(b) { return a.utf8.lexicographicallyPrecedes(b.utf8) }
        return SortedKeyOrder.precedes(a, b)
    }
}

// MARK: - Encoding to a tree

/// An `Encoder` that builds a `JSONValue` (then written by `JSONValue.write`). Keyed containers asked for twice on
/// one encoder share one object, so a type may add keys to what another type encoded (ContractEvent's `cabinet`).
public enum ContractEncoder {
    public static func encode<T: Encodable>(_ value: T) throws -> JSONValue {
        if let v = value as? JSONValue { return v }
        if let d = value as? Date { return .string(RFC3339.format(d)) }
        let node = Node(codingPath: [])
        try value.encode(to: node)
        return node.result
    }

    /// A container's storage, shared by reference with the containers that write into it.
    final class Ref {
        enum Storage { case value(JSONValue), object([String: Ref]), array([Ref]) }
        var storage: Storage
        init(_ s: Storage) { storage = s }
        var value: JSONValue {
            switch storage {
            case let .value(v): return v
            case let .object(o): return .object(o.mapValues(\.value))
            case let .array(a): return .array(a.map(\.value))
            }
        }
    }

    final class Node: Encoder {
        let codingPath: [CodingKey]
        var userInfo: [CodingUserInfoKey: Any] { [:] }
        var ref: Ref?
        init(codingPath: [CodingKey]) { self.codingPath = codingPath }
        init(codingPath: [CodingKey], ref: Ref) { self.codingPath = codingPath; self.ref = ref }

        var result: JSONValue { ref?.value ?? .object([:]) }
        func set(_ v: JSONValue) {
            if let ref { ref.storage = .value(v) } else { ref = Ref(.value(v)) }
        }

        func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
            let r: Ref
            if let ref, case .object = ref.storage { r = ref } else if let ref { ref.storage = .object([:]); r = ref } else {
                r = Ref(.object([:])); ref = r
            }
            return KeyedEncodingContainer(Keyed<Key>(ref: r, codingPath: codingPath))
        }

        func unkeyedContainer() -> UnkeyedEncodingContainer {
            let r: Ref
            if let ref, case .array = ref.storage { r = ref } else if let ref { ref.storage = .array([]); r = ref } else {
                r = Ref(.array([])); ref = r
            }
            return Unkeyed(ref: r, codingPath: codingPath)
        }

        func singleValueContainer() -> SingleValueEncodingContainer { Single(node: self) }
    }

    static func box<T: Encodable>(_ value: T, path: [CodingKey]) throws -> JSONValue {
        switch value {
        case let v as JSONValue: return v
        case let d as Date: return .string(RFC3339.format(d))
        case let s as String: return .string(s)
        case let b as Bool: return .bool(b)
        case let i as Int: return .int(i)
        case let d as Double: return .double(d)
        default:
            let node = Node(codingPath: path)
            try value.encode(to: node)
            return node.result
        }
    }

    static func int<I: BinaryInteger>(_ i: I) -> JSONValue {
        if let v = Int(exactly: i) { return .int(v) }
        return .raw(Array(String(i).utf8))   // beyond Int (a UInt64 above Int.max): its digits
    }

    /// A Float through its own shortest form (0.1 stays 0.1, not 0.10000000149011612).
    static func float(_ f: Float) -> JSONValue { f.isFinite ? .double(Double(f.description) ?? Double(f)) : .null }

    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let ref: Ref
        let codingPath: [CodingKey]

        private func put(_ v: JSONValue, _ key: Key) { put(Ref(.value(v)), key) }
        private func put(_ r: Ref, _ key: Key) {
            guard case var .object(o) = ref.storage else { return }
            ref.storage = .value(.null)   // release the dictionary so the write below does not copy it
            o[key.stringValue] = r
            ref.storage = .object(o)
        }

        mutating func encodeNil(forKey key: Key) throws { put(.null, key) }
        mutating func encode(_ value: Bool, forKey key: Key) throws { put(.bool(value), key) }
        mutating func encode(_ value: String, forKey key: Key) throws { put(.string(value), key) }
        mutating func encode(_ value: Double, forKey key: Key) throws { put(.double(value), key) }
        mutating func encode(_ value: Float, forKey key: Key) throws { put(ContractEncoder.float(value), key) }
        mutating func encode(_ value: Int, forKey key: Key) throws { put(.int(value), key) }
        mutating func encode(_ value: Int8, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: Int16, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: Int32, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: Int64, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: UInt, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: UInt8, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: UInt16, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: UInt32, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode(_ value: UInt64, forKey key: Key) throws { put(ContractEncoder.int(value), key) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws {
            put(try ContractEncoder.box(value, path: codingPath + [key]), key)
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type,
                                                            forKey key: Key) -> KeyedEncodingContainer<NestedKey> {
            let r = Ref(.object([:]))
            put(r, key)
            return KeyedEncodingContainer(Keyed<NestedKey>(ref: r, codingPath: codingPath + [key]))
        }

        mutating func nestedUnkeyedContainer(forKey key: Key) -> UnkeyedEncodingContainer {
            let r = Ref(.array([]))
            put(r, key)
            return Unkeyed(ref: r, codingPath: codingPath + [key])
        }

        mutating func superEncoder() -> Encoder { superEncoder(forKey: Key(stringValue: "super")!) }
        mutating func superEncoder(forKey key: Key) -> Encoder {
            let r = Ref(.value(.null))
            put(r, key)
            return Node(codingPath: codingPath + [key], ref: r)
        }
    }

    struct Unkeyed: UnkeyedEncodingContainer {
        let ref: Ref
        let codingPath: [CodingKey]
        var count: Int { if case let .array(a) = ref.storage { a.count } else { 0 } }

        private func append(_ r: Ref) {
            guard case var .array(a) = ref.storage else { return }
            ref.storage = .value(.null)
            a.append(r)
            ref.storage = .array(a)
        }
        private var indexKey: CodingKey { ContractKey(intValue: count)! }

        mutating func encodeNil() throws { append(Ref(.value(.null))) }
        mutating func encode(_ value: Bool) throws { append(Ref(.value(.bool(value)))) }
        mutating func encode(_ value: String) throws { append(Ref(.value(.string(value)))) }
        mutating func encode(_ value: Double) throws { append(Ref(.value(.double(value)))) }
        mutating func encode(_ value: Float) throws { append(Ref(.value(ContractEncoder.float(value)))) }
        mutating func encode(_ value: Int) throws { append(Ref(.value(.int(value)))) }
        mutating func encode(_ value: Int8) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: Int16) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: Int32) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: Int64) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: UInt) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: UInt8) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: UInt16) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: UInt32) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode(_ value: UInt64) throws { append(Ref(.value(ContractEncoder.int(value)))) }
        mutating func encode<T: Encodable>(_ value: T) throws {
            append(Ref(.value(try ContractEncoder.box(value, path: codingPath + [indexKey]))))
        }

        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy keyType: NestedKey.Type) -> KeyedEncodingContainer<NestedKey> {
            let r = Ref(.object([:]))
            let path = codingPath + [indexKey]
            append(r)
            return KeyedEncodingContainer(Keyed<NestedKey>(ref: r, codingPath: path))
        }
        mutating func nestedUnkeyedContainer() -> UnkeyedEncodingContainer {
            let r = Ref(.array([]))
            let path = codingPath + [indexKey]
            append(r)
            return Unkeyed(ref: r, codingPath: path)
        }
        mutating func superEncoder() -> Encoder {
            let r = Ref(.value(.null))
            let path = codingPath + [indexKey]
            append(r)
            return Node(codingPath: path, ref: r)
        }
    }

    struct Single: SingleValueEncodingContainer {
        let node: Node
        var codingPath: [CodingKey] { node.codingPath }
        mutating func encodeNil() throws { node.set(.null) }
        mutating func encode(_ value: Bool) throws { node.set(.bool(value)) }
        mutating func encode(_ value: String) throws { node.set(.string(value)) }
        mutating func encode(_ value: Double) throws { node.set(.double(value)) }
        mutating func encode(_ value: Float) throws { node.set(ContractEncoder.float(value)) }
        mutating func encode(_ value: Int) throws { node.set(.int(value)) }
        mutating func encode(_ value: Int8) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: Int16) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: Int32) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: Int64) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: UInt) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: UInt8) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: UInt16) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: UInt32) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode(_ value: UInt64) throws { node.set(ContractEncoder.int(value)) }
        mutating func encode<T: Encodable>(_ value: T) throws { node.set(try ContractEncoder.box(value, path: codingPath)) }
    }
}
