import Acquisition
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import StationSupport

/// One line per record, logfmt: `ts=… level=… part=… msg="…" key=value…`, to stderr (journald keeps it).
/// Easy to grep on a board and to parse by a log shipper. Secrets are never passed as metadata.
public struct LogfmtHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String

    public init(label: String, level: Logger.Level = .info) {
        self.label = label
        self.logLevel = level
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "ts=\(RFC3339.format(Date())) level=\(event.level) logger=\(label)"
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() where key == "part" { line += " part=\(Self.quote("\(all[key]!)"))" }
        line += " msg=\(Self.quote("\(event.message)"))"
        for key in all.keys.sorted() where key != "part" { line += " \(Self.safeKey(key))=\(Self.quote("\(all[key]!)"))" }
        RecentLog.shared.append(line)
        line += "\n"
        writeAll(line, to: 2)
    }

    /// A metadata key as written: its characters outside letters, digits and `_ . -` become `_`.
    static func safeKey(_ key: String) -> String {
        String(String.UnicodeScalarView(key.unicodeScalars.map {
            ($0.properties.isAlphabetic || $0.properties.numericType != nil || "_.-".unicodeScalars.contains($0)) && !isControl($0) ? $0 : "_"
        }))
    }

    /// A logfmt value: bare when it is a plain word, else in double quotes with `\` and `"` escaped. Control
    /// characters (CR, LF, NUL, ESC, …, and U+2028/2029) are always escaped, in the message and in every
    /// metadata value: a value a client chose (a control `op`, a topic) cannot forge a log line or drive a terminal.
    static func quote(_ s: String) -> String {
        let needsQuotes = s.isEmpty || s.unicodeScalars.contains { $0 == " " || $0 == "\"" || $0 == "=" || $0 == "\\" || isControl($0) }
        guard needsQuotes else { return s }
        var out = "\""
        for u in s.unicodeScalars {
            switch u {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if isControl(u) {
                    let hex = String(u.value, radix: 16)
                    out += u.value <= 0xFF ? "\\x" + (hex.count < 2 ? "0" + hex : hex) : "\\u" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out + "\""
    }

    /// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
    static func isControl(_ u: Unicode.Scalar) -> Bool {
        u.value < 0x20 || (0x7F ... 0x9F).contains(u.value) || u.value == 0x2028 || u.value == 0x2029
    }
}

/// The last lines logged by this process, for the diagnostics bundle (`swapctl diagnostics`): a support
/// engineer gets recent history even where the journal is not at hand. Bounded: `capacity` lines.
public final class RecentLog: Sendable {
    public static let shared = RecentLog(capacity: 500)
    private let box: Locked<(lines: [String], next: Int)>
    private let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        box = Locked((lines: [], next: 0))
    }

    public func append(_ line: String) {
        box.withLock { b in
            if b.lines.count < capacity { b.lines.append(line) } else { b.lines[b.next] = line }
            b.next = (b.next + 1) % capacity
        }
    }

    /// Oldest first.
    public var lines: [String] {
        box.withLock { b in b.lines.count < capacity ? b.lines : Array(b.lines[b.next...] + b.lines[..<b.next]) }
    }
}
