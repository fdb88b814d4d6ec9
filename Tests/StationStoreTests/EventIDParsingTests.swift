import Foundation
import Testing
@testable import StationStore

/// StationStore.parseEventID (the publisher's read) accepts and refuses exactly what UUID(uuidString:) does, and gives
/// the same UUID.
@Suite("Event id parsing")
struct EventIDParsingTests {
    @Test func sameAsUUIDStringForCanonicalForms() {
        for _ in 0 ..< 2000 {
            let id = UUID()
            let upper = id.uuidString
            let lower = upper.lowercased()
            var mixed = ""
            for (i, c) in upper.enumerated() { mixed.append(i % 2 == 0 ? c : Character(c.lowercased())) }
            for text in [upper, lower, mixed] {
                #expect(StationStore.parseEventID(text) == id)
                #expect(StationStore.parseEventID(text) == UUID(uuidString: text))
            }
        }
    }

    @Test func sameAsUUIDStringForMalformedForms() {
        let base = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
        var texts = ["", "-", base + "0", String(base.dropLast()), "{" + base + "}", " " + base, base + " ",
                     base.replacingOccurrences(of: "-", with: ""), base.replacingOccurrences(of: "-", with: "_")]
        let chars = Array(base.utf8)
        for i in chars.indices {
            for replacement in Array("-0aFgG :+x\u{00e9}".unicodeScalars).map(String.init) {
                var t = Array(base.unicodeScalars).map(String.init)
                t[i] = replacement
                texts.append(t.joined())
            }
        }
        for text in texts {
            #expect(StationStore.parseEventID(text) == UUID(uuidString: text), "\(text)")
        }
        #expect(StationStore.parseEventID(base) != nil)
        #expect(StationStore.parseEventID(base.replacingOccurrences(of: "a", with: "g")) == nil)
    }
}
