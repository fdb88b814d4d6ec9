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
