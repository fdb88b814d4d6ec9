// StationDomain formats without full Foundation (issue 13: no ICU): the same text ISO8601DateFormatter and
// String(format:) wrote, checked against them here (the tests may use full Foundation).
import Foundation
import Testing
@testable import StationDomain

@Suite struct FoundationFreeFormattingTests {
    @Test func dayIsWhatISO8601DateFormatterWithFullDateWrote() {
        let reference = ISO8601DateFormatter()
        reference.formatOptions = [.withFullDate]
        for seconds: Double in [0, 951_782_399, 951_782_400, 1_772_323_199.999, 1_800_000_000, -31_536_000, 4_102_444_800] {
            let d = Date(timeIntervalSince1970: seconds)
            #expect(SwapRules.day(d) == reference.string(from: d), "\(seconds)")
        }
    }

    @Test func kWhIsWhatStringFormatWrote() {
        for v in [0.0, 1.0005, 2.0015, 129.6, 1e-9, -0.0004, 12345.6789, 0.1 + 0.2, 1e15] {
            #expect(SwapRules.kWh(v) == String(format: "%.3f", v), "\(v)")
        }
    }
}
