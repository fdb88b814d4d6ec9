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
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func quote(_ s: String) -> String {
        if !s.isEmpty, !s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return s }
        return "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"")
            .replacingOccurrences(of: "\n", with: "\\n") + "\""
    }
}
