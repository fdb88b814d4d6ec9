// SimulatorCore's trimming (station-sim links FoundationEssentials only, where trimmingCharacters(in:) is missing)
// gives what Foundation's trimmingCharacters(in:) gave; checked against it here.
import Foundation
import Testing
import SimulatorCore

@Suite struct TrimmingTests {
    static let samples = ["", "  ", "\t{\"cmd\":\"state\"}  ", "\n\r\n{\"a\":1}\r\n", " \u{00A0}x y\u{2003}", "\u{2028}line\u{2029}",
                          "full, empty ,mixed", "\u{85}x\u{85}", "é ", "\r\n"]

    @Test func sameAsFoundation() {
        for s in Self.samples {
            #expect(s.trimmingWhitespaces() == s.trimmingCharacters(in: .whitespaces), "\(s.debugDescription)")
            #expect(s.trimmingNewlines() == s.trimmingCharacters(in: .newlines), "\(s.debugDescription)")
            #expect(s.trimmingWhitespacesAndNewlines() == s.trimmingCharacters(in: .whitespacesAndNewlines), "\(s.debugDescription)")
            let sub = s[...]
            #expect(sub.trimmingWhitespaces() == sub.trimmingCharacters(in: .whitespaces), "\(s.debugDescription)")
        }
    }
}
