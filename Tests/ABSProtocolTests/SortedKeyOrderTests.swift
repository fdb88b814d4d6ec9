import Foundation
import Testing
@testable import ABSProtocol

/// ContractJSON sorts object keys without Foundation (SortedKeyOrder): the order must stay the one Foundation's
/// JSONSerialization `.sortedKeys` gives (ICU collation, numeric), checked here against Foundation itself.
@Suite struct SortedKeyOrderTests {
    func foundationPrecedes(_ a: String, _ b: String) -> Bool {
        a.compare(b, options: [.numeric, .caseInsensitive, .forcedOrdering], range: a.startIndex ..< a.endIndex,
                  locale: Locale(identifier: "")) == .orderedAscending
    }

    func serialization(_ keys: [String]) throws -> String {
        var o: [String: Any] = [:]
        for (i, k) in keys.enumerated() { o[k] = i }
        return String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys]), as: UTF8.self)
    }

    func contract(_ keys: [String]) -> String {
        var o: [String: JSONValue] = [:]
        for (i, k) in keys.enumerated() { o[k] = .int(i) }
        return String(decoding: JSONValue.object(o).bytes, as: UTF8.self)
    }

    @Test func everyASCIIPairOrdersAsFoundation() {
        // Every printable ASCII character against every other, alone and after a common prefix and before a digit.
        let chars = (0x20 ... 0x7E).map { String(UnicodeScalar(UInt8($0))) }
        var mismatches: [String] = []
        for a in chars {
            for b in chars where a != b {
                for (x, y) in [(a, b), ("k" + a, "k" + b), (a + "1", b + "1"), ("7" + a, "7" + b)] {
                    if SortedKeyOrder.precedes(x, y) != foundationPrecedes(x, y) { mismatches.append("\(x) | \(y)") }
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20))")
    }

    @Test func randomCabinetAndFamilyLikeKeysOrderAsFoundation() throws {
        // Keys as cabinet ids and battery families look: letters of both cases, digits (leading zeros too), - _ .
        var rng = SplitMix64(seed: 13)
        let alphabet = Array("aAbBzZ0019_-.x")
        var mismatches: [String] = []
        for _ in 0 ..< 4000 {
            func key() -> String { String((0 ..< Int(rng.next() % 6 + 1)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }) }
            let a = key(), b = key()
            if a == b { continue }
            if SortedKeyOrder.precedes(a, b) != foundationPrecedes(a, b) { mismatches.append("\(a) | \(b)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(20))")
        // And whole objects, byte for byte.
        for _ in 0 ..< 50 {
            var keys = Set<String>()
            for _ in 0 ..< 12 { keys.insert(String((0 ..< Int(rng.next() % 5 + 1)).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })) }
            #expect(contract(Array(keys)) == (try serialization(Array(keys))))
        }
    }

    @Test func tieBreaksAndLatinLettersOrderAsFoundation() throws {
        // Case against leading zeros (the first difference wins), accents before case, accents in ICU's order.
        let keys = ["x9y", "x09y", "x9Y", "a1B", "a01b", "ab01", "aB1", "Ae", "aé", "aE", "Aé", "e", "é", "è", "ê",
                    "ë", "ē", "ẽ", "E", "É", "e1", "e01", "0", "00", "a b", "a_b", "a-b", "a.1", "a.01", "LFP48",
                    "lfp48", "NMC72", "cab2", "cab10", "CAB-1", "cab_1", "ñ", "n", "ç", "c", "ü", "u", "ů", "ą", "a"]
        #expect(contract(keys) == (try serialization(keys)))
        var mismatches: [String] = []
        for a in keys { for b in keys where a != b && SortedKeyOrder.precedes(a, b) != foundationPrecedes(a, b) {
            mismatches.append("\(a) | \(b)")
        } }
        #expect(mismatches.isEmpty, "\(mismatches)")
    }
}
