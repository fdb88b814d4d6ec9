import Foundation
import Testing
@testable import OdooLink

/// OdooLink no longer uses full Foundation (String(format:), DateFormatter, trimmingCharacters, replacingOccurrences):
/// what replaced them must give what Foundation gave, checked against Foundation itself here.
@Suite struct FoundationFreeOdooTests {
    @Test func hugeQuantitiesAreWrittenAsStringFormatWroteThem() {
        // decimal3 falls back to "%.3f" beyond 9e12 (the scaled value would not fit exactly).
        let values: [Double] = [9.0e12, -9.0e12, 1.23456789e13, -4.5e15, 1e20, -1e20, 1.0005e14, 2.0e300, -.greatestFiniteMagnitude,
                                .greatestFiniteMagnitude, 9_007_199_254_740_993, 123_456_789_012_345.678]
        for v in values {
            #expect(printf3(v) == String(format: "%.3f", v), "\(v)")
            #expect(OdooRequest.decimal3(v) == String(format: "%.3f", v), "\(v)")
        }
        // Rounding and the sign, as printf does them (to nearest, ties to even on the binary value).
        for v in [0.0005, 0.0015, 0.0025, -0.0005, -0.0015, 1.0005, 2.5e-4, -2.5e-4, 0.1, -0.1, -0.0, 0] {
            #expect(printf3(v) == String(format: "%.3f", v), "\(v)")
        }
        #expect(printf3(-1e20) == "-100000000000000000000.000")
        #expect(printf3(0.0015) == "0.002")
        #expect(printf3(-0.0005) == "-0.001")
    }

    func dateFormatter(_ value: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        for format in ["EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz", "EEE MMM d HH:mm:ss yyyy"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: value) { return date }
        }
        return nil
    }

    @Test func httpDatesAreReadAsDateFormatterReadThem() {
        let dates = ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
                     "Sun Nov 16 08:49:37 1994", "Sun, 22 Nov 2026 10:05:01 GMT", "Sunday, 22-Nov-26 10:04:41 GMT",
                     "Thu, 01 Jan 1970 00:00:00 GMT", "Tue, 29 Feb 2028 23:59:59 GMT", "Wed, 31 Dec 2070 12:00:00 GMT",
                     "Monday, 01-Jan-70 00:00:00 GMT", "Friday, 31-Dec-99 23:59:59 GMT", "Sat, 1 Jan 2000 00:00:00 GMT",
                     "sun, 06 nov 1994 08:49:37 GMT", "Sun, 06 Nov 1994 08:49:37 UTC"]
        for d in dates {
            let mine = HTTPDate.parse(d)
            #expect(mine != nil, "\(d)")
            #expect(mine == dateFormatter(d), "\(d)")
        }
        #expect(HTTPDate.parse("Sun, 06 Nov 1994 08:49:37 GMT") == Date(timeIntervalSince1970: 784_111_777))
        // Not dates, for both.
        for d in ["", "soon", "120", "Sun, 06 Nov 1994", "Sun, 32 Nov 1994 08:49:37 GMT", "Sun, 06 Foo 1994 08:49:37 GMT",
                  "Sun, 06 Nov 1994 25:49:37 GMT", "Sun, 06 Nov 1994 08:61:37 GMT", "Sun, 30 Feb 2026 08:00:00 GMT",
                  "Xyz, 06 Nov 1994 08:49:37 GMT", "2026-11-22T10:05:01Z"] {
            #expect(HTTPDate.parse(d) == nil, "\(d)")
            #expect(dateFormatter(d) == nil, "\(d)")
        }
    }

    @Test func retryAfterIsTrimmedAsCharacterSetWhitespacesTrims() {
        var differ: [UInt32] = []
        for v in UInt32(0) ... 0x10FFFF {
            guard let u = Unicode.Scalar(v) else { continue }
            let raw = String(u) + "7" + String(u)
            if HTTPDate.trimmingWhitespaces(raw) != raw.trimmingCharacters(in: .whitespaces) { differ.append(v) }
        }
        #expect(differ.isEmpty, "\(differ.prefix(20))")
        for raw in [" 120 ", "\t7\t", "\u{00A0}30\u{3000}", "  ", "", "5\n", "\u{2003}9", "\u{200B}9"] {
            #expect(HTTPDate.trimmingWhitespaces(raw) == raw.trimmingCharacters(in: .whitespaces), "\(Array(raw.unicodeScalars))")
        }
        let headers = [("Retry-After", "\u{00A0}30\t")]
        #expect(OdooResponseClassifier.retryAfter(headers, now: Date()) == 30)
    }

    @Test func aNonJSONBodyIsQuotedOnOneLine() {
        let body = Array("<html>\r\nbad\ngateway\r</html>".utf8)
        let outcome = OdooResponseClassifier.classify(status: 200, headers: [], body: body)
        #expect(outcome == .transient(reason: "HTTP 200 with a body that is not JSON (<html>  bad gateway </html>)", retryAfter: nil))
    }

    /// What occurred_at was written with before: Calendar in UTC (TimeZone(identifier: "UTC") is nil with
    /// FoundationEssentials alone, which crashed the daemon: the date is computed by hand now).
    func calendarText(_ date: Date) -> String {
        let totalMs = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = totalMs / 1000
        var ms = totalMs % 1000
        if ms < 0 { ms += 1000; seconds -= 1 }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second],
                                        from: Date(timeIntervalSince1970: TimeInterval(seconds)))
        func pad(_ v: Int?, _ width: Int) -> String {
            let s = String(v ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T\(pad(c.hour, 2)):\(pad(c.minute, 2)):"
            + "\(pad(c.second, 2)).\(pad(Int(ms), 3))Z"
    }

    @Test func occurredAtIsWhatCalendarGave() {
        var dates: [Double] = [0, -0.0005, -0.001, -1, -86_400, -86_400.5, 951_782_400, 951_868_799.9995, 1_795_341_871.25,
                               1_795_341_871.2495, 1_795_341_871.9996, 4_102_444_800, 4_107_542_399.999, -2_208_988_800,
                               1_709_164_800, 1_709_251_199.9999]
        var state: UInt64 = 13
        for _ in 0 ..< 3000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            dates.append(Double(Int64(bitPattern: state >> 20) % 4_000_000_000_000) / 1000)   // 1970 to 2096, whole ms
        }
        for t in dates {
            let d = Date(timeIntervalSince1970: t)
            #expect(OdooRequest.rfc3339Milliseconds(d) == calendarText(d), "\(t)")
        }
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 951_868_799.9995)) == "2000-02-29T23:59:59.999Z" ||
                OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: 951_868_799.9995)) == "2000-03-01T00:00:00.000Z")
        #expect(OdooRequest.rfc3339Milliseconds(Date(timeIntervalSince1970: -0.001)) == "1969-12-31T23:59:59.999Z")
    }
}
