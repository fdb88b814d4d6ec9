// HTTP dates (RFC 9110 5.6.7) read by hand: what Foundation's DateFormatter did for `Retry-After` with the formats
// "EEE, dd MMM yyyy HH:mm:ss zzz", "EEEE, dd-MMM-yy HH:mm:ss zzz" and "EEE MMM d HH:mm:ss yyyy" (en_US_POSIX, GMT),
// without full Foundation (DateFormatter lives there, with ICU: see docs/board-footprint.md).
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

enum HTTPDate {
    /// IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, RFC 850 `Sunday, 06-Nov-94 08:49:37 GMT` or asctime
    /// `Sun Nov  6 08:49:37 1994` (GMT). Day names in either form, any case (not checked against the date, as
    /// DateFormatter did not); the zone `GMT`, `UTC` or `UT`; a two-digit year in the 100 years from 80 years ago
    /// (ICU's default century). Nil for anything else.
    static func parse(_ value: String, now: Date = Date()) -> Date? {
        let tokens = value.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
        if tokens.count == 6, tokens[0].hasSuffix(","), weekday(String(tokens[0].dropLast())),
           let day = number(tokens[1], digits: 1 ... 2), let month = month(tokens[2]),
           let year = number(tokens[3], digits: 4 ... 4), let time = clock(tokens[4]), gmt(tokens[5]) {
            return date(year, month, day, time)                       // IMF-fixdate
        }
        if tokens.count == 4, tokens[0].hasSuffix(","), weekday(String(tokens[0].dropLast())), gmt(tokens[3]) {
            let parts = tokens[1].split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            if parts.count == 3, let day = number(parts[0], digits: 1 ... 2), let month = month(parts[1]),
               let yy = number(parts[2], digits: 2 ... 2), let time = clock(tokens[2]) {
                return date(twoDigitYear(yy, now: now), month, day, time)   // RFC 850
            }
            return nil
        }
        if tokens.count == 5, weekday(tokens[0]), let month = month(tokens[1]),
           let day = number(tokens[2], digits: 1 ... 2), let time = clock(tokens[3]),
           let year = number(tokens[4], digits: 4 ... 4) {
            return date(year, month, day, time)                       // asctime
        }
        return nil
    }

    private static let days = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    private static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    private static func weekday(_ s: String) -> Bool {
        let l = s.lowercased()
        return days.contains { $0 == l || $0.prefix(3) == l }
    }

    private static func month(_ s: String) -> Int? {
        months.firstIndex(of: s.lowercased()).map { $0 + 1 }
    }

    private static func gmt(_ s: String) -> Bool { ["GMT", "UTC", "UT"].contains(s.uppercased()) }

    private static func number(_ s: String, digits: ClosedRange<Int>) -> Int? {
        guard digits.contains(s.utf8.count), s.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int(s)
    }

    private static func clock(_ s: String) -> (Int, Int, Int)? {
        let p = s.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        guard p.count == 3, let h = number(p[0], digits: 1 ... 2), let m = number(p[1], digits: 1 ... 2),
              let sec = number(p[2], digits: 1 ... 2), h <= 23, m <= 59, sec <= 59 else { return nil }
        return (h, m, sec)
    }

    /// The year of `yy` within [now − 80 years, now + 20 years).
    static func twoDigitYear(_ yy: Int, now: Date) -> Int {
        let current = 1970 + Int((now.timeIntervalSince1970 / 31_556_952).rounded(.down))   // mean Gregorian year
        var year = (current - 80) - (current - 80) % 100 + yy
        if year < current - 80 { year += 100 }
        return year
    }

    private static func date(_ year: Int, _ month: Int, _ day: Int, _ time: (Int, Int, Int)) -> Date? {
        let monthDays = [31, (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard day >= 1, day <= monthDays[month - 1] else { return nil }
        // Days since 1970-01-01 (H. Hinnant's days_from_civil).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        return Date(timeIntervalSince1970: Double(days * 86_400 + time.0 * 3600 + time.1 * 60 + time.2))
    }

    /// `trimmingCharacters(in: .whitespaces)`: spaces, tabs and the other Unicode White_Space scalars that are not
    /// newlines (CharacterSet.whitespaces), and U+200B, which that set holds too.
    static func trimmingWhitespaces(_ s: String) -> String {
        func drop(_ u: Unicode.Scalar) -> Bool {
            switch u.value {
            case 0x0A ... 0x0D, 0x85, 0x2028, 0x2029: return false
            case 0x200B: return true   // ZERO WIDTH SPACE: in CoreFoundation's set, though not White_Space
            default: return u.properties.isWhitespace
            }
        }
        let scalars = s.unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        return String(String.UnicodeScalarView(scalars[first ... last]))
    }
}
