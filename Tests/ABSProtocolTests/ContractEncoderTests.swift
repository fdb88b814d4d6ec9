import ABSProtocol
import Foundation
import Testing

/// The contract's one JSON writer (ABSProtocol/Contract/ContractJSON.swift): it must write what Foundation's
/// JSONSerialization wrote with `.sortedKeys` and `.withoutEscapingSlashes` before the payloads were typed, so the
/// station's wire bytes did not change.
@Suite struct ContractEncoderTests {
    func text(_ v: some Encodable) -> String { String(decoding: ContractJSON.encode(v), as: UTF8.self) }
    func serialization(_ o: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    @Test func stringsAreEscapedAsJSONSerializationDoes() throws {
        let s = "a/b \"q\" \\ \n\t\r\u{08}\u{0C}\u{00}\u{01}\u{1F}\u{7F} é \u{2028} 🔋 </script>"
        let v: JSONValue = ["s": .string(s)]
        #expect(text(v) == (try serialization(["s": s])))
        #expect(text(v) == #"{"s":"a/b \"q\" \\ \n\t\r\b\f\u0000\u0001\u001f"# + "\u{7F} é \u{2028} 🔋 </script>\"}")
        // And a parser reads the same string back.
        let back = try #require(try JSONSerialization.jsonObject(with: Data(ContractJSON.encode(v))) as? [String: String])
        #expect(back["s"] == s)
    }

    @Test func keysAreSortedAsJSONSerializationSortsThem() throws {
        // Contract keys (a–z and _), cabinet ids and battery family names as keys (ready_by_family, status cabinets).
        let keys = ["cabinet", "cabinet_slot", "cabinet_stale", "cabinets", "a_b", "ab", "a", "_x", "z",
                    "A", "B", "b", "cab2", "cab10", "LFP48", "NMC72", "lfp48", "x-y", "x.y", "é", "e"]
        var o: [String: JSONValue] = [:]
        var plain: [String: Any] = [:]
        for (i, k) in keys.enumerated() { o[k] = .int(i); plain[k] = i }
        #expect(text(JSONValue.object(o)) == (try serialization(plain)))
        // Nested objects too.
        #expect(text(JSONValue.object(["b": ["z": 1, "y": ["x": 2, "w": 3]], "a": [["d": 1, "c": 2]]])) ==
                #"{"a":[{"c":2,"d":1}],"b":{"y":{"w":3,"x":2},"z":1}}"#)
    }

    @Test func numbersAreWrittenAsJSONSerializationWritesThem() throws {
        let doubles: [Double] = [0, -0.0, 1, 12, 80.0, 54.1, 0.1 + 0.2, 1e20, 1e21, 1e-7, 0.000123, 2.5e15, 1e16,
                                 123456789.123, -3.25, 5e-324, .greatestFiniteMagnitude, 3.7, 53.12, 0.005]
        for d in doubles {
            #expect(text(JSONValue.object(["d": .double(d)])) == (try serialization(["d": d])), "\(d)")
        }
        // Integers of every width, and the limits.
        struct Ints: Encodable {
            var i8 = Int8.min, u8 = UInt8.max, i16 = Int16.min, u16 = UInt16.max, i32 = Int32.min, u32 = UInt32.max
            var i64 = Int64.min, u64 = UInt64.max, i = -7, f: Float = 0.1
        }
        // (Keys in JSONSerialization's numeric order: i8 before i16.)
        #expect(text(Ints()) == #"{"f":0.1,"i":-7,"i8":-128,"i16":-32768,"i32":-2147483648,"i64":-9223372036854775808,"# +
                #""u8":255,"u16":65535,"u32":4294967295,"u64":18446744073709551615}"#)
        // Non-finite: null (JSONSerialization refuses them; a payload must still go out).
        #expect(text(JSONValue.array([.double(.nan), .double(.infinity), .double(-.infinity)])) == "[null,null,null]")
        #expect(ContractJSON.round(54.120000000000005, 2) == 54.12)
        #expect(text(JSONValue.double(ContractJSON.round(53.6 - 0.05))) == "53.6")
    }

    @Test func datesAreRFC3339WithMilliseconds() {
        struct At: Encodable { var at: Date; var list: [Date] }
        let v = At(at: Date(timeIntervalSince1970: 1_795_000_000.25), list: [Date(timeIntervalSince1970: -0.001)])
        #expect(text(v) == #"{"at":"2026-11-18T11:06:40.250Z","list":["1969-12-31T23:59:59.999Z"]}"#)
        #expect(text(JSONValue.array([])) == "[]")
        #expect(ContractJSON.encode(Date(timeIntervalSince1970: 0)) == Array(#""1970-01-01T00:00:00.000Z""#.utf8))
    }

    @Test func optionalsNullsNestedContainersAndRaw() {
        struct Inner: Encodable { var y: Int? = nil; var x = true }
        struct Outer: Encodable {
            var missing: String? = nil
            var inner = Inner()
            var list: [Inner?] = [nil, Inner(y: 2)]
            var dict: [String: Int] = ["b": 2, "a": 1]
            func encode(to encoder: Encoder) throws {
                var c = encoder.container(keyedBy: ContractKey.self)
                try c.encodeIfPresent(missing, forKey: "left_out")
                try c.encodeNullable(missing, forKey: "null_one")
                try c.encode(inner, forKey: "inner")
                try c.encode(list, forKey: "list")
                try c.encode(dict, forKey: "dict")
                var nested = c.nestedContainer(keyedBy: ContractKey.self, forKey: "nested")
                try nested.encode("n", forKey: "k")
                var un = c.nestedUnkeyedContainer(forKey: "unkeyed")
                try un.encode(1); try un.encodeNil(); try un.encode("s")
                try c.encode(JSONValue.raw(Array(#"{"stored":[1,2]}"#.utf8)), forKey: "raw")
                // A second container on the same encoder adds to the same object.
                var again = encoder.container(keyedBy: ContractKey.self)
                try again.encode(1, forKey: "added")
            }
        }
        #expect(text(Outer()) == #"{"added":1,"dict":{"a":1,"b":2},"inner":{"x":true},"list":[null,{"x":true,"y":2}],"# +
                #""nested":{"k":"n"},"null_one":null,"raw":{"stored":[1,2]},"unkeyed":[1,null,"s"]}"#)
    }

    @Test func jsonValueUnderAnotherEncoderKeepsItsShape() throws {
        let v: JSONValue = ["a": [1, 2.5, "x", true, nil], "b": ["c": "d"]]
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        #expect(String(decoding: try enc.encode(v), as: UTF8.self) == text(v))
    }
}
