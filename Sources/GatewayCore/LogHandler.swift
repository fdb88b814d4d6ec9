import Acquisition
import Foundation
import Logging

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
        var line = "ts=\(Timestamp.rfc3339(Date())) level=\(event.level) logger=\(label)"
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        for key in all.keys.sorted() where key == "part" { line += " part=\(Self.quote("\(all[key]!)"))" }
        line += " msg=\(Self.quote("\(event.message)"))"
        for key in all.keys.sorted() where key != "part" { line += " \(key)=\(Self.quote("\(all[key]!)"))" }
        RecentLog.shared.append(line)
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func quote(_ s: String) -> String {
        if !s.isEmpty, !s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return s }
        return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}

/// The last lines logged by this process, for the diagnostics bundle (`swapctl diagnostics`): a support
/// engineer gets recent history even where the journal is not at hand. Bounded: `capacity` lines.
public final class RecentLog: Sendable {
    public static let shared = RecentLog(capacity: 500)
    private let box: LockedBox<(lines: [String], next: Int)>
    private let capacity: Int

    public init(capacity: Int) {
        self.capacity = max(1, capacity)
        box = LockedBox((lines: [], next: 0))
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
