// StationSupport's replacements for full-Foundation calls (issue 13: FoundationEssentials only, no ICU) give what
// the Foundation calls gave; checked against them here (the tests may use full Foundation).
import Foundation
import Testing
@testable import StationSupport

@Suite struct FoundationFreeHelpersTests {
    @Test func parentDirectoryIsDeletingLastPathComponent() {
        for path in ["/var/lib/swapgate/station.sqlite-reserve", "station.sqlite-reserve", "/station-reserve", "a/b", "/a/b/", "./x", "../x/y"] {
            #expect(DiskReserve.parentDirectory(path) == (path as NSString).deletingLastPathComponent, "\(path)")
        }
    }

    @Test func cFormatIsStringFormat() {
        for v in [0.0, 1.0005, 2.0015, 129.6, -0.0004, 12345.6789, 0.1 + 0.2, 1e300] {
            #expect(cFormat("%.3f", v) == String(format: "%.3f", v), "\(v)")
        }
        #expect(cFormat("0x%04X %2d", 0xBEEF as Int32, 7 as Int32) == String(format: "0x%04X %2d", 0xBEEF as Int32, 7 as Int32))
    }
}

/// StationSupport's trimmingWhitespacesAndNewlines gives Foundation's trimmingCharacters(in: .whitespacesAndNewlines)
/// over every scalar of the first planes, around text and alone.
@Suite struct SharedTrimmingTests {
    @Test func sameAsFoundationForEveryScalar() {
        for v in UInt32(0) ..< 0x3100 {
            guard let c = Unicode.Scalar(v) else { continue }
            for s in [String(c), "\(c)a b\(c)", "\(c)\(c)x\(c)"] {
                #expect(s.trimmingWhitespacesAndNewlines() == s.trimmingCharacters(in: .whitespacesAndNewlines), "U+\(String(v, radix: 16))")
            }
        }
    }
}
