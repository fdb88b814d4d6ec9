#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import CLibYAML

/// The configuration file as a parsed YAML document, for loading and for showing it with its secrets
/// redacted. Both work on the parsed document, never on the text: a secret written as a block scalar
/// (`password: >-` and the value on the next line), under a quoted key (`"api_key": …`), in flow style or
/// through an alias is found the same way as a plain `password: x`.
///
/// libyaml (C) parses; this file composes its events into a small node tree and resolves scalars the way
/// Yams 6.2.2's default resolver and constructor did (YAML 1.1 booleans, ints with 0x/0o/0b/sexagesimal,
/// floats, `~`/null, timestamps), with hand-written matchers instead of regular expressions: Yams' Swift
/// layer needed full Foundation (NSRegularExpression, NSNull, Calendar), hence ICU.
///
/// Aliases are bounded: composing keeps an alias as the anchored node itself (shared, cheap), but converting
/// the tree to plain values copies every alias. A ~1 KB "billion laughs" file would expand to billions
/// of nodes; the conversion counts nodes and refuses a document beyond `maxNodes`.
public enum YAMLDocument {
    /// Far above any real configuration (the example names ~110 keys), far below anything slow.
    public static let maxNodes = 20_000

    public struct TooLarge: Error, CustomStringConvertible {
        public var description: String {
            "the document expands to more than \(YAMLDocument.maxNodes) YAML nodes (aliases included): refused as an alias bomb"
        }
    }

    public struct ComplexKey: Error, CustomStringConvertible {
        public var description: String { "a mapping key must be a plain value, not a mapping, a sequence or an alias" }
    }

    /// A syntax error (libyaml's scanner, parser or reader), an undefined alias, a second document or a
    /// duplicated key; the text is what Yams wrote: `line:column: error: stage: problem:` and the line with a caret.
    public struct SyntaxError: Error, CustomStringConvertible {
        public let description: String
        /// 1-based; 0 when unknown.
        public let line: Int
    }

    /// A YAML null (`~`, `null`, an empty value) as a plain value: written `<null>` (NSNull's text).
    public struct Null: Hashable, Sendable, CustomStringConvertible {
        public init() {}
        public var description: String { "<null>" }
    }

    /// A node of one document. An alias is composed as the node of its anchor (a shared copy, not expanded).
    public indirect enum Node: Sendable {
        case scalar(Scalar)
        case sequence([Node], tag: String)
        case mapping([(key: Node, value: Node)], tag: String)

        public var scalar: Scalar? { if case let .scalar(s) = self { return s } else { return nil } }
    }

    public struct Scalar: Sendable {
        /// libyaml's scalar styles (yaml_scalar_style_t).
        public enum Style: Int, Sendable { case any = 0, plain, singleQuoted, doubleQuoted, literal, folded }
        public var string: String
        public var style: Style
        /// The resolved tag (`tag:yaml.org,2002:int`, …): an explicit one, `str` for a quoted scalar, else by value.
        public var tag: String
        public var line = 0, column = 0

        public init(_ string: String, style: Style = .any, tag: String? = nil, line: Int = 0, column: Int = 0) {
            self.string = string
            self.style = style
            self.tag = tag ?? Resolve.tag(of: string)
            self.line = line
            self.column = column
        }

        /// The value as Yams' default constructor built it: Bool, Int, Double, `Null`, Date, Data or String.
        public var value: Any { Resolve.construct(self) }
    }

    /// Parses one YAML document (nil when the text has none).
    public static func compose(_ yaml: String) throws -> Node? {
        // Bounded before composing: the composer hashes every mapping's keys (its duplicate-key check), and
        // an alias bomb would be copied around before the conversion's count applies.
        try preflight(yaml)
        return try Composer(yaml).singleRoot()
    }

    /// The document as plain values (`[String: Any]`, `[Any]`, scalars as `Scalar.value`), counting every
    /// node visited (an alias counts its whole target again) and throwing `TooLarge` past `maxNodes`.
    public static func plain(_ node: Node) throws -> Any {
        var budget = maxNodes
        return try plain(node, budget: &budget)
    }

    static func plain(_ node: Node, budget: inout Int) throws -> Any {
        budget -= 1
        if budget < 0 { throw TooLarge() }
        switch node {
        case let .scalar(s):
            return s.value
        case let .sequence(seq, _):
            var out: [Any] = []
            for n in seq { out.append(try plain(n, budget: &budget)) }
            return out
        case let .mapping(map, _):
            var out: [String: Any] = [:]
            var merged: [String: Any] = [:]
            for (k, v) in map {
                guard case let .scalar(key) = k else { throw ComplexKey() }
                budget -= 1
                if budget < 0 { throw TooLarge() }
                if key.string == "<<", key.style == .plain || key.style == .any {
                    // `<<: *defaults` (or a list of them): keys not set in this mapping come from there.
                    let sources: [Node]
                    if case let .sequence(list, _) = v { sources = list } else { sources = [v] }
                    for s in sources {
                        guard let m = try plain(s, budget: &budget) as? [String: Any] else { continue }
                        merged.merge(m) { old, _ in old }
                    }
                    continue
                }
                out[key.string] = try plain(v, budget: &budget)
            }
            out.merge(merged) { own, _ in own }
            return out
        }
    }

    /// Whether a mapping key names a secret: password, passphrase, api key, token, secret, credential,
    /// private key, anywhere in the key and in any case — except `…_file`, which name a file, not a secret.
    public static func isSecretKey(_ key: String) -> Bool {
        let k = String(key.lowercased().map { $0 == "-" ? "_" : $0 })
        if k.hasSuffix("_file") { return false }
        return ["password", "passwd", "passphrase", "api_key", "apikey", "token", "secret", "credential", "private_key"]
            .contains { k.utf8.contains(subsequence: $0.utf8) }
    }

    /// The document re-emitted as YAML with the value of every secret key (at any depth, whatever its type or
    /// style) replaced by `<redacted>`. Comments and anchors are not kept; aliases appear expanded.
    /// Fails closed: text that cannot be parsed or is too large is not shown at all.
    public static func redacted(_ yaml: String) -> String {
        do {
            guard let root = try compose(yaml) else { return "" }
            var budget = maxNodes
            let clean = try redact(root, budget: &budget)
            return try Emitter.serialize(clean)
        } catch {
            // Not the parser's message: it quotes the text around the problem, which may be a secret.
            return "# <redacted: the file cannot be shown without its secrets (\(error is TooLarge ? "too large" : "not valid YAML"))>"
        }
    }

    static func redact(_ node: Node, budget: inout Int) throws -> Node {
        budget -= 1
        if budget < 0 { throw TooLarge() }
        switch node {
        case .scalar:
            return node
        case let .sequence(seq, tag):
            var nodes: [Node] = []
            for n in seq { nodes.append(try redact(n, budget: &budget)) }
            return .sequence(nodes, tag: tag)
        case let .mapping(map, tag):
            var pairs: [(key: Node, value: Node)] = []
            for (k, v) in map {
                guard case let .scalar(name) = k else { throw ComplexKey() }
                let key = try redact(k, budget: &budget)
                if isSecretKey(name.string) {
                    pairs.append((key, .scalar(Scalar("<redacted>"))))
                } else {
                    pairs.append((key, try redact(v, budget: &budget)))
                }
            }
            return .mapping(pairs, tag: tag)
        }
    }

    /// Walks the parser's events once, before anything is built: the size of every anchored node (its
    /// aliases included) is counted, so an alias bomb is refused in time linear in the text; a mapping key
    /// that is not a plain scalar (a collection, or an alias) is refused too — no configuration key is one.
    static func preflight(_ yaml: String) throws {
        let events = EventReader(yaml)
        // One frame per open collection: its node count so far, children seen, whether it is a mapping, its anchor.
        var stack: [(count: Int, children: Int, mapping: Bool, anchor: String?)] = []
        var anchors: [String: Int] = [:]
        func add(_ n: Int, isScalar: Bool) throws {
            guard !stack.isEmpty else { return }
            let i = stack.count - 1
            if stack[i].mapping, stack[i].children % 2 == 0, !isScalar { throw ComplexKey() }
            stack[i].children += 1
            stack[i].count = min(stack[i].count + n, maxNodes + 1)
            if stack[i].count > maxNodes { throw TooLarge() }
        }
        while true {
            // A syntax error is left to the composer, which reports it with its line.
            guard let done: Bool = try? events.next({ event in
                switch event.type {
                case YAML_STREAM_END_EVENT: return true
                case YAML_SCALAR_EVENT:
                    if let a = cString(event.data.scalar.anchor) { anchors[a] = 1 }
                    try add(1, isScalar: true)
                case YAML_ALIAS_EVENT:
                    try add(cString(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1, isScalar: false)
                case YAML_SEQUENCE_START_EVENT:
                    stack.append((1, 0, false, cString(event.data.sequence_start.anchor)))
                case YAML_MAPPING_START_EVENT:
                    stack.append((1, 0, true, cString(event.data.mapping_start.anchor)))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let frame = stack.popLast() else { break }
                    if let a = frame.anchor { anchors[a] = frame.count }
                    try add(frame.count, isScalar: false)
                default: break
                }
                return false
            }) else {
                // The parser's error (the composer reports it, with its line) or ours (recorded by `next`).
                if let ours = events.thrown { throw ours }
                return
            }
            if done { return }
        }
    }

    static func cString(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        p.map { String(cString: UnsafePointer($0)) }
    }
}

// MARK: - libyaml's parser, one event at a time

/// Owns a libyaml parser over a private copy of the text (libyaml reads it lazily, so it must outlive the parser).
final class EventReader {
    let yaml: String
    private var parser = yaml_parser_t()
    private let buffer: UnsafeMutableBufferPointer<UInt8>
    /// The error a `next` body threw (as opposed to the parser's).
    private(set) var thrown: Error?

    init(_ yaml: String) {
        self.yaml = yaml
        let bytes = Array(yaml.utf8)
        buffer = .allocate(capacity: max(bytes.count, 1))
        _ = buffer.initialize(from: bytes)
        yaml_parser_initialize(&parser)
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        yaml_parser_set_input_string(&parser, buffer.baseAddress, bytes.count)
    }

    deinit {
        yaml_parser_delete(&parser)
        buffer.deallocate()
    }

    /// Parses the next event and hands it to `body` (valid only there); a parser error is thrown as `SyntaxError`.
    func next<T>(_ body: (inout yaml_event_t) throws -> T) throws -> T {
        var event = yaml_event_t()
        guard yaml_parser_parse(&parser, &event) == 1 else { throw parserError() }
        defer { yaml_event_delete(&event) }
        if event.type == YAML_SEQUENCE_START_EVENT || event.type == YAML_MAPPING_START_EVENT { try checkNesting(event) }
        do { return try body(&event) } catch { thrown = error; throw error }
    }

    /// Collections nested deeper than 1000 levels are refused as Yams' libyaml did (yaml_set_max_nest_level,
    /// which Debian's libyaml 0.2.5 lacks): the same test on the scanner's state, the same message. Composing
    /// and converting recurse once per level, so this bound is also what keeps a hostile file off the stack.
    static let maxNestingLevel = 1000

    private func checkNesting(_ event: yaml_event_t) throws {
        let indents = parser.indents.start.map { parser.indents.top! - $0 } ?? 0
        guard indents >= Self.maxNestingLevel - Int(parser.flow_level) else { return }
        let flow = event.type == YAML_SEQUENCE_START_EVENT
            ? event.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE
            : event.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE
        // The problem is at the collection's first token: `[` or `{` (one character before the event's end), or
        // the zero-width start of a block collection (its end).
        let line = Int(event.end_mark.line) + 1, column = Int(event.end_mark.column) + (flow ? 0 : 1)
        throw YAMLText.error(yaml, "parser",
                             context: "while parsing in line \(event.start_mark.line + 1), column \(event.start_mark.column + 1)\n",
                             problem: "Maximum nesting level reached, set with yaml_set_max_nest_level())", line: line, column: column)
    }

    private func parserError() -> YAMLDocument.SyntaxError {
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        let line = Int(parser.problem_mark.line) + 1, column = Int(parser.problem_mark.column) + 1
        var context = ""
        if let c = parser.context {
            context = "\(String(cString: c)) in line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1)\n"
        }
        switch parser.error {
        case YAML_READER_ERROR:
            return YAMLText.readerError(yaml, problem: problem, byteOffset: Int(parser.problem_offset), value: parser.problem_value)
        case YAML_SCANNER_ERROR:
            return YAMLText.error(yaml, "scanner", context: context, problem: problem, line: line, column: column)
        case YAML_PARSER_ERROR:
            return YAMLText.error(yaml, "parser", context: context, problem: problem, line: line, column: column)
        case YAML_COMPOSER_ERROR:
            return YAMLText.error(yaml, "composer", context: context, problem: problem, line: line, column: column)
        case YAML_MEMORY_ERROR:
            return .init(description: "Memory error", line: 0)
        default:
            return .init(description: "libyaml error \(parser.error.rawValue)", line: 0)
        }
    }
}

// MARK: - Composing one document

/// Yams' Parser.singleRoot() over libyaml's events: anchors, aliases (undefined ones refused), duplicate
/// keys refused, exactly one document.
private final class Composer {
    let events: EventReader
    var anchors: [String: YAMLDocument.Node] = [:]

    enum Event {
        case streamEnd, documentEnd
        case documentStart(line: Int, column: Int)
        case scalar(YAMLDocument.Scalar, anchor: String?)
        case alias(String, line: Int, column: Int)
        case sequenceStart(tag: String, anchor: String?)
        case mappingStart(tag: String, anchor: String?)
        case collectionEnd
        case other(line: Int, column: Int)
    }

    init(_ yaml: String) { events = EventReader(yaml) }

    func next() throws -> Event {
        try events.next { e -> Event in
            let line = Int(e.start_mark.line) + 1, column = Int(e.start_mark.column) + 1
            switch e.type {
            case YAML_STREAM_END_EVENT: return .streamEnd
            case YAML_DOCUMENT_START_EVENT: return .documentStart(line: line, column: column)
            case YAML_DOCUMENT_END_EVENT: return .documentEnd
            case YAML_SCALAR_EVENT:
                let s = e.data.scalar
                let value = String(decoding: UnsafeBufferPointer(start: s.value, count: Int(s.length)), as: UTF8.self)
                // A quoted (or block) scalar without a tag is a string; a plain one is resolved by its value.
                let explicit: String? = s.quoted_implicit == 1 ? Tag.str : YAMLDocument.cString(s.tag)
                let tag: String
                switch explicit {
                case nil: tag = Resolve.tag(of: value)
                case "!": tag = Tag.str
                case let t?: tag = t
                }
                let style = YAMLDocument.Scalar.Style(rawValue: Int(s.style.rawValue)) ?? .any
                return .scalar(.init(value, style: style, tag: tag, line: line, column: column),
                               anchor: YAMLDocument.cString(s.anchor))
            case YAML_ALIAS_EVENT:
                return .alias(YAMLDocument.cString(e.data.alias.anchor) ?? "", line: line, column: column)
            case YAML_SEQUENCE_START_EVENT:
                let s = e.data.sequence_start
                let t = s.implicit != 0 ? nil : YAMLDocument.cString(s.tag)
                return .sequenceStart(tag: t == nil || t == "!" ? Tag.seq : t!, anchor: YAMLDocument.cString(s.anchor))
            case YAML_MAPPING_START_EVENT:
                let s = e.data.mapping_start
                let t = s.implicit != 0 ? nil : YAMLDocument.cString(s.tag)
                return .mappingStart(tag: t == nil || t == "!" ? Tag.map : t!, anchor: YAMLDocument.cString(s.anchor))
            case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT: return .collectionEnd
            default: return .other(line: line, column: column)
            }
        }
    }

    func singleRoot() throws -> YAMLDocument.Node? {
        _ = try next()                                   // STREAM-START
        let first = try next()
        if case .streamEnd = first { return nil }
        let node = try load(try next())                  // after DOCUMENT-START
        _ = try next()                                   // DOCUMENT-END
        let after = try next()
        if case .streamEnd = after { return node }
        var line = 0, column = 0
        if case let .documentStart(l, c) = after { line = l; column = c }
        throw YAMLText.error(events.yaml, "composer", context: "expected a single document in the stream in line 1, column 1\n",
                             problem: "but found another document", line: line, column: column)
    }

    func load(_ event: Event) throws -> YAMLDocument.Node {
        switch event {
        case let .scalar(s, anchor):
            let node = YAMLDocument.Node.scalar(s)
            if let anchor { anchors[anchor] = node }
            return node
        case let .alias(name, line, column):
            guard let node = anchors[name] else {
                throw YAMLText.error(events.yaml, "composer", context: "", problem: "found undefined alias", line: line, column: column)
            }
            return node
        case let .sequenceStart(tag, anchor):
            var items: [YAMLDocument.Node] = []
            while true {
                let e = try next()
                if case .collectionEnd = e { break }
                items.append(try load(e))
            }
            let node = YAMLDocument.Node.sequence(items, tag: tag)
            if let anchor { anchors[anchor] = node }
            return node
        case let .mappingStart(tag, anchor):
            var pairs: [(key: YAMLDocument.Node, value: YAMLDocument.Node)] = []
            while true {
                let e = try next()
                if case .collectionEnd = e { break }
                let key = try load(e)
                pairs.append((key, try load(try next())))
            }
            try checkDuplicates(pairs)
            let node = YAMLDocument.Node.mapping(pairs, tag: tag)
            if let anchor { anchors[anchor] = node }
            return node
        default:
            throw YAMLDocument.SyntaxError(description: "unexpected YAML event", line: 0)
        }
    }

    /// Yams' check: keys equal by text and resolved tag (`a` and `"a"` are the same key, `1` and `"1"` are not).
    func checkDuplicates(_ pairs: [(key: YAMLDocument.Node, value: YAMLDocument.Node)]) throws {
        struct Key: Hashable { let string: String, tag: String }
        var firsts: [Key: YAMLDocument.Scalar] = [:], counts: [Key: Int] = [:]
        for (k, _) in pairs {
            guard case let .scalar(s) = k else { throw YAMLDocument.ComplexKey() }
            let key = Key(string: s.string, tag: s.tag)
            if firsts[key] == nil { firsts[key] = s }
            counts[key, default: 0] += 1
        }
        let duplicated = counts.filter { $0.value > 1 }.keys.compactMap { firsts[$0] }.sorted { $0.string < $1.string }
        guard let first = duplicated.first else { return }
        let names = duplicated.map(\.string).sorted().map { "'\($0)'" }.joined(separator: ", ")
        // Yams quoted the whole document here ("Context:" and the file): a configuration holds secrets, so the
        // message names the keys and where the mapping starts, never the text.
        throw YAMLDocument.SyntaxError(description: """
            Parser: expected all keys to be unique but found the following duplicated key(s): \(names) \
            (in the mapping at line \(first.line), column \(first.column))
            """, line: first.line)
    }
}

// MARK: - Emitting (the redacted view)

/// Yams' serialize(node:allowUnicode: true) through libyaml's emitter: the same events, the same settings,
/// so the same text. Collections in block style, scalars in their parsed style, no tags, no anchors.
private enum Emitter {
    final class Output { var bytes: [UInt8] = [] }

    static func serialize(_ node: YAMLDocument.Node) throws -> String {
        var emitter = yaml_emitter_t()
        guard yaml_emitter_initialize(&emitter) == 1 else { throw YAMLDocument.SyntaxError(description: "Memory error", line: 0) }
        defer { yaml_emitter_delete(&emitter) }
        let output = Output()
        let context = Unmanaged.passUnretained(output).toOpaque()
        yaml_emitter_set_output(&emitter, { data, buffer, size in
            guard let data, let buffer else { return 0 }
            Unmanaged<Output>.fromOpaque(data).takeUnretainedValue().bytes.append(contentsOf: UnsafeBufferPointer(start: buffer, count: size))
            return 1
        }, context)
        yaml_emitter_set_canonical(&emitter, 0)
        yaml_emitter_set_indent(&emitter, 0)
        yaml_emitter_set_width(&emitter, 0)
        yaml_emitter_set_unicode(&emitter, 1)
        yaml_emitter_set_break(&emitter, YAML_LN_BREAK)
        yaml_emitter_set_encoding(&emitter, YAML_UTF8_ENCODING)

        func emit(_ event: inout yaml_event_t) throws {
            guard yaml_emitter_emit(&emitter, &event) == 1 else {
                throw YAMLDocument.SyntaxError(description: emitter.problem.map { String(cString: $0) } ?? "Memory error", line: 0)
            }
        }
        func serialize(_ node: YAMLDocument.Node) throws {
            var event = yaml_event_t()
            switch node {
            case let .scalar(s):
                var value = Array(s.string.utf8) + [0]     // never an empty buffer: libyaml copies `length` bytes
                var tag = Array(s.tag.utf8) + [0]
                let style = yaml_scalar_style_t(rawValue: numericCast(s.style.rawValue))
                value.withUnsafeMutableBufferPointer { v in
                    tag.withUnsafeMutableBufferPointer { t in
                        _ = yaml_scalar_event_initialize(&event, nil, t.baseAddress, v.baseAddress, Int32(v.count - 1), 1, 1, style)
                    }
                }
                try emit(&event)
            case let .sequence(items, tag):
                var t = Array(tag.utf8) + [0]
                t.withUnsafeMutableBufferPointer { t in
                    _ = yaml_sequence_start_event_initialize(&event, nil, t.baseAddress, tag == Tag.seq ? 1 : 0, YAML_ANY_SEQUENCE_STYLE)
                }
                try emit(&event)
                for n in items { try serialize(n) }
                yaml_sequence_end_event_initialize(&event)
                try emit(&event)
            case let .mapping(pairs, tag):
                var t = Array(tag.utf8) + [0]
                t.withUnsafeMutableBufferPointer { t in
                    _ = yaml_mapping_start_event_initialize(&event, nil, t.baseAddress, tag == Tag.map ? 1 : 0, YAML_ANY_MAPPING_STYLE)
                }
                try emit(&event)
                for (k, v) in pairs { try serialize(k); try serialize(v) }
                yaml_mapping_end_event_initialize(&event)
                try emit(&event)
            }
        }

        var event = yaml_event_t()
        yaml_stream_start_event_initialize(&event, YAML_UTF8_ENCODING)
        try emit(&event)
        yaml_document_start_event_initialize(&event, nil, nil, nil, 1)
        try emit(&event)
        try serialize(node)
        yaml_document_end_event_initialize(&event, 1)
        try emit(&event)
        yaml_stream_end_event_initialize(&event)
        try emit(&event)
        return String(decoding: output.bytes, as: UTF8.self)
    }
}

// MARK: - Error text (Yams' YamlError descriptions)

enum YAMLText {
    static func error(_ yaml: String, _ stage: String, context: String, problem: String, line: Int, column: Int) -> YAMLDocument.SyntaxError {
        .init(description: "\(line):\(column): error: \(stage): \(context)\(problem):\n" + snippet(yaml, line: line, column: column), line: line)
    }

    /// The reader's errors (a control character, say) come with a byte offset, not a line.
    static func readerError(_ yaml: String, problem: String, byteOffset: Int, value: Int32) -> YAMLDocument.SyntaxError {
        let utf8 = yaml.utf8
        guard let i = utf8.index(utf8.startIndex, offsetBy: byteOffset, limitedBy: utf8.endIndex),
              let at = i.samePosition(in: yaml), at < yaml.endIndex else {
            let offset = utf8.index(utf8.startIndex, offsetBy: byteOffset, limitedBy: utf8.endIndex)?.samePosition(in: yaml)
                .map { yaml.distance(from: yaml.startIndex, to: $0) }
            return .init(description: "\(problem) at offset: \(String(describing: offset)), value: \(value)", line: 0)
        }
        var number = 0
        var line = lineRange(yaml, startingAt: yaml.startIndex)
        while line.upperBound <= at && line.upperBound < yaml.endIndex {
            number += 1
            line = lineRange(yaml, startingAt: line.upperBound)
        }
        let column = yaml.utf16.distance(from: line.lowerBound, to: at)
        let contents = redactedLine(String(yaml[line]))
        return .init(description: "\(number + 1):\(column + 1): error: reader: \(problem):\n" + endingWithNewLine(contents)
                        + String(repeating: " ", count: column) + "^", line: number + 1)
    }

    /// An error quotes the line it is about. When that line names a secret key (`password: "unterminated…`,
    /// `{api_key: x, …`), everything after the secret key's `:` is replaced by `<redacted>`: the caret still points
    /// into the line, the secret does not reach the log or `check-config`'s output.
    static func redactedLine(_ line: String) -> String {
        // ASCII case folding on the bytes, so offsets in `folded` are offsets in `bytes`.
        let bytes = Array(line.utf8)
        let folded = bytes.map { $0 >= 0x41 && $0 <= 0x5A ? $0 + 0x20 : $0 }
        for word in ["password", "passwd", "passphrase", "api_key", "api-key", "apikey", "token", "secret", "credential",
                     "private_key", "private-key"] {
            guard let hit = folded.firstRange(of: Array(word.utf8)) else { continue }
            // `password_file: /etc/…` names a file, not a secret (as isSecretKey).
            let tail = folded[hit.upperBound...].prefix { $0 != UInt8(ascii: ":") && $0 != UInt8(ascii: " ")
                && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "'") }
            if tail.suffix(5).elementsEqual("_file".utf8) || tail.suffix(5).elementsEqual("-file".utf8) { continue }
            guard let colon = bytes[hit.upperBound...].firstIndex(of: UInt8(ascii: ":")) else { return "<redacted>" + ending(line) }
            return String(decoding: bytes[...colon], as: UTF8.self) + " <redacted>" + ending(line)
        }
        return line
    }

    private static func ending(_ line: String) -> String {
        line.hasSuffix("\n") || line.hasSuffix("\r") ? "\n" : ""
    }

    /// Line `line` (1-based, the last one if beyond), then a caret under `column` (counted in Unicode scalars).
    static func snippet(_ yaml: String, line: Int, column: Int) -> String {
        var number = 0
        var range = lineRange(yaml, startingAt: yaml.startIndex)
        while number < line - 1 && range.upperBound < yaml.endIndex {
            number += 1
            range = lineRange(yaml, startingAt: range.upperBound)
        }
        let contents = redactedLine(String(yaml[range]))
        let scalars = contents.unicodeScalars
        let index = scalars.index(scalars.startIndex, offsetBy: max(column - 1, 0), limitedBy: scalars.endIndex) ?? scalars.endIndex
        let spaces = contents.utf16.distance(from: contents.utf16.startIndex, to: index)
        return endingWithNewLine(contents) + String(repeating: " ", count: spaces) + "^"
    }

    /// The line starting at `start`, its terminator included (NSString's getLineStart: LF, CR, CRLF, NEL, LS, PS).
    static func lineRange(_ s: String, startingAt start: String.Index) -> Range<String.Index> {
        let scalars = s.unicodeScalars
        var i = start
        while i < scalars.endIndex {
            let c = scalars[i]
            let after = scalars.index(after: i)
            switch c.value {
            case 0x0D:
                if after < scalars.endIndex, scalars[after].value == 0x0A { return start ..< scalars.index(after: after) }
                return start ..< after
            case 0x0A, 0x85, 0x2028, 0x2029:
                return start ..< after
            default:
                i = after
            }
        }
        return start ..< scalars.endIndex
    }

    /// CharacterSet.newlines: U+000A…U+000D, U+0085, U+2028, U+2029.
    static func endingWithNewLine(_ s: String) -> String {
        guard let last = s.unicodeScalars.last?.value else { return s + "\n" }
        return (0x0A ... 0x0D).contains(last) || last == 0x85 || last == 0x2028 || last == 0x2029 ? s : s + "\n"
    }
}

// MARK: - Scalar resolution (Yams 6.2.2's Resolver.default and Constructor.default, without regular expressions)

enum Tag {
    static let str = "tag:yaml.org,2002:str"
    static let seq = "tag:yaml.org,2002:seq"
    static let map = "tag:yaml.org,2002:map"
    static let bool = "tag:yaml.org,2002:bool"
    static let int = "tag:yaml.org,2002:int"
    static let float = "tag:yaml.org,2002:float"
    static let null = "tag:yaml.org,2002:null"
    static let merge = "tag:yaml.org,2002:merge"
    static let timestamp = "tag:yaml.org,2002:timestamp"
    static let value = "tag:yaml.org,2002:value"
    static let binary = "tag:yaml.org,2002:binary"
}

enum Resolve {
    /// The implicit tag of a plain scalar: Yams' rules in their order (bool, int, float, merge, null, timestamp, value).
    static func tag(of string: String) -> String {
        let b = Array(string.utf8)
        if isBool(string) { return Tag.bool }
        if isInt(b) { return Tag.int }
        if isFloat(b) { return Tag.float }
        if string == "<<" { return Tag.merge }
        if isNull(string) { return Tag.null }
        if isTimestamp(b) { return Tag.timestamp }
        if string == "=" { return Tag.value }
        return Tag.str
    }

    static func isBool(_ s: String) -> Bool {
        switch s {
        case "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE",
             "on", "On", "ON", "off", "Off", "OFF": return true
        default: return false
        }
    }

    static func isNull(_ s: String) -> Bool { s == "~" || s == "null" || s == "Null" || s == "NULL" || s.isEmpty }

    // Byte classes.
    static func digit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
    static func digitOr_(_ c: UInt8) -> Bool { digit(c) || c == 0x5F }
    static func isSign(_ c: UInt8) -> Bool { c == 0x2B || c == 0x2D }

    /// `[0-5]?[0-9]`: the segments after the first `:` of a sexagesimal number.
    static func isSexagesimalSegment(_ s: ArraySlice<UInt8>) -> Bool {
        if s.count == 1 { return digit(s[s.startIndex]) }
        if s.count == 2 { let a = s[s.startIndex], b = s[s.startIndex + 1]; return a >= 0x30 && a <= 0x35 && digit(b) }
        return false
    }

    /// `[-+]?(?:0b[0-1_]+ | 0o?[0-7_]+ | 0 | [1-9][0-9_]* | 0x[0-9a-fA-F_]+ | [1-9][0-9_]*(?::[0-5]?[0-9])+)`
    static func isInt(_ all: [UInt8]) -> Bool {
        var s = all[...]
        if let f = s.first, isSign(f) { s = s.dropFirst() }
        guard let f = s.first else { return false }
        if f == 0x30 {                                           // 0
            let rest = s.dropFirst()
            if rest.isEmpty { return true }
            if rest.first == 0x62 { let d = rest.dropFirst(); return !d.isEmpty && d.allSatisfy { $0 == 0x30 || $0 == 0x31 || $0 == 0x5F } }
            if rest.first == 0x78 {
                let d = rest.dropFirst()
                return !d.isEmpty && d.allSatisfy { digit($0) || ($0 >= 0x61 && $0 <= 0x66) || ($0 >= 0x41 && $0 <= 0x46) || $0 == 0x5F }
            }
            let d = rest.first == 0x6F ? rest.dropFirst() : rest
            return !d.isEmpty && d.allSatisfy { ($0 >= 0x30 && $0 <= 0x37) || $0 == 0x5F }
        }
        guard f >= 0x31 && f <= 0x39 else { return false }
        let parts = s.split(separator: 0x3A, omittingEmptySubsequences: false)
        guard parts[0].allSatisfy(digitOr_) else { return false }
        return parts.dropFirst().allSatisfy(isSexagesimalSegment)
    }

    /// `[-+]?[0-9][0-9_]*(\.[0-9_]*)?([eE][-+]?[0-9]+)? | \.[0-9_]+([eE][-+][0-9]+)?
    ///  | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]* | [-+]?\.(inf|Inf|INF) | \.(nan|NaN|NAN)`
    static func isFloat(_ all: [UInt8]) -> Bool {
        let text = String(decoding: all, as: UTF8.self)
        if text == ".nan" || text == ".NaN" || text == ".NAN" { return true }
        var s = all[...]
        let signed = s.first.map(isSign) ?? false
        if signed { s = s.dropFirst() }
        let rest = String(decoding: s, as: UTF8.self)
        if rest == ".inf" || rest == ".Inf" || rest == ".INF" { return true }
        guard let f = s.first else { return false }
        if f == 0x2E {                                           // .5, .5e+3 (unsigned only)
            guard !signed else { return false }
            var i = s.index(after: s.startIndex)
            let start = i
            while i < s.endIndex, digitOr_(s[i]) { i += 1 }
            guard i > start else { return false }
            if i == s.endIndex { return true }
            guard s[i] == 0x65 || s[i] == 0x45 else { return false }
            i += 1
            guard i < s.endIndex, isSign(s[i]) else { return false }
            i += 1
            return i < s.endIndex && s[i...].allSatisfy(digit)
        }
        guard digit(f) else { return false }
        if s.contains(0x3A) {                                    // sexagesimal with a fraction
            guard let dot = s.firstIndex(of: 0x2E) else { return false }
            guard s[(dot + 1)...].allSatisfy(digitOr_) else { return false }
            let parts = s[..<dot].split(separator: 0x3A, omittingEmptySubsequences: false)
            guard parts.count >= 2, parts[0].allSatisfy(digitOr_) else { return false }
            return parts.dropFirst().allSatisfy(isSexagesimalSegment)
        }
        var i = s.startIndex
        while i < s.endIndex, digitOr_(s[i]) { i += 1 }
        if i < s.endIndex, s[i] == 0x2E {
            i += 1
            while i < s.endIndex, digitOr_(s[i]) { i += 1 }
        }
        if i == s.endIndex { return true }
        guard s[i] == 0x65 || s[i] == 0x45 else { return false }
        i += 1
        if i < s.endIndex, isSign(s[i]) { i += 1 }
        return i < s.endIndex && s[i...].allSatisfy(digit)
    }

    /// `\d{4}-\d\d-\d\d` or `\d{4}-\d\d?-\d\d?([Tt]|[ \t]+)\d\d?:\d\d:\d\d(\.\d*)?([ \t]*(Z|[-+]\d\d?(:\d\d)?))?`
    static func isTimestamp(_ b: [UInt8]) -> Bool {
        guard let t = Timestamp(b) else { return false }
        return t.hasTime || (t.monthDigits == 2 && t.dayDigits == 2)
    }

    /// The fields of Yams' timestamp pattern (its constructor's; the resolver's differs only for a date alone).
    struct Timestamp {
        var year = 0, month = 0, day = 0, monthDigits = 0, dayDigits = 0
        var hasTime = false, hour = 0, minute = 0, second = 0
        var fraction: [UInt8]? = nil
        var zoneSign: UInt8? = nil, zoneHour = 0, zoneMinute = 0

        init?(_ b: [UInt8]) {
            var i = 0
            func digits(_ min: Int, _ max: Int) -> (Int, Int)? {
                var n = 0, v = 0
                while n < max, i < b.count, Resolve.digit(b[i]) { v = v * 10 + Int(b[i] - 0x30); i += 1; n += 1 }
                return n >= min ? (v, n) : nil
            }
            func take(_ c: UInt8) -> Bool { if i < b.count, b[i] == c { i += 1; return true }; return false }
            guard let (y, _) = digits(4, 4), take(0x2D), let (m, md) = digits(1, 2), take(0x2D), let (d, dd) = digits(1, 2) else { return nil }
            year = y; month = m; monthDigits = md; day = d; dayDigits = dd
            if i == b.count { return }
            // The time: [Tt] or blanks, then hh:mm:ss, an optional fraction and an optional zone.
            if b[i] == 0x54 || b[i] == 0x74 { i += 1 } else {
                let start = i
                while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
                guard i > start else { return nil }
            }
            guard let (h, _) = digits(1, 2), take(0x3A), let (mi, _) = digits(2, 2), take(0x3A), let (sec, _) = digits(2, 2) else { return nil }
            hasTime = true; hour = h; minute = mi; second = sec
            if take(0x2E) {
                var f: [UInt8] = []
                while i < b.count, Resolve.digit(b[i]) { f.append(b[i]); i += 1 }
                fraction = f
            }
            while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 }
            if i == b.count { if b[i - 1] == 0x20 || b[i - 1] == 0x09 { return nil }; return }   // blanks only before a zone
            if take(0x5A) { zoneSign = 0x2B } else {
                guard Resolve.isSign(b[i]) else { return nil }
                zoneSign = b[i]; i += 1
                guard let (zh, _) = digits(1, 2) else { return nil }
                zoneHour = zh
                if take(0x3A) { guard let (zm, _) = digits(2, 2) else { return nil }; zoneMinute = zm }
            }
            if i != b.count { return nil }
        }

        /// As Foundation's lenient Gregorian calendar computes it (month 13 is next January, day 32 the next
        /// month's first), proleptic; the fraction is cut to nanoseconds.
        var date: Date {
            let m0 = month - 1
            let y = year + (m0 >= 0 ? m0 / 12 : (m0 - 11) / 12)
            let m = ((m0 % 12) + 12) % 12 + 1
            // Days from 1970-01-01 to y-m-01 (Howard Hinnant's days_from_civil).
            let yy = m <= 2 ? y - 1 : y
            let era = (yy >= 0 ? yy : yy - 399) / 400
            let yoe = yy - era * 400
            let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5
            let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
            let days = era * 146_097 + doe - 719_468 + (day - 1)
            var seconds = days * 86_400 + hour * 3600 + minute * 60 + second
            let zone = (zoneHour * 3600 + zoneMinute * 60) * (zoneSign == 0x2D ? -1 : 1)
            seconds -= zone
            var date = Date(timeIntervalSince1970: Double(seconds))
            if let f = fraction, !f.isEmpty {
                let text = String(decoding: f.prefix(9), as: UTF8.self)
                if let n = Int(text) {
                    let ns = f.count < 9 ? n * Int(pow10(9 - f.count)) : n
                    date = date.addingTimeInterval(Double(ns) / 1_000_000_000.0)
                }
            }
            return date
        }

        private func pow10(_ n: Int) -> Int { (0 ..< n).reduce(1) { a, _ in a * 10 } }
    }

    /// Yams' Constructor.default for a scalar: by its resolved tag, a String when the tag's constructor fails.
    static func construct(_ s: YAMLDocument.Scalar) -> Any {
        let plainish = s.style == .plain || s.style == .any
        switch s.tag {
        case Tag.bool:
            switch s.string.lowercased() {
            case "true", "yes", "on": return true
            case "false", "no", "off": return false
            default: return s.string
            }
        case Tag.int:
            guard plainish, let i = int(s.string) else { return s.string }
            return i
        case Tag.float:
            guard plainish, let d = double(s.string) else { return s.string }
            return d
        case Tag.null:
            guard s.style == .plain, isNull(s.string) else { return s.string }
            return YAMLDocument.Null()
        case Tag.timestamp:
            guard let t = Timestamp(Array(s.string.utf8)) else { return s.string }
            return t.date
        case Tag.binary:
            // Data(base64Encoded:options: .ignoreUnknownCharacters)
            let alphabet = s.string.unicodeScalars.filter {
                ($0 >= "A" && $0 <= "Z") || ($0 >= "a" && $0 <= "z") || ($0 >= "0" && $0 <= "9") || $0 == "+" || $0 == "/" || $0 == "="
            }
            return Data(base64Encoded: String(String.UnicodeScalarView(alphabet))) ?? s.string
        default:
            return s.string
        }
    }

    static func withoutUnderscores(_ s: String) -> String { String(s.unicodeScalars.filter { $0 != "_" }.map(Character.init)) }

    /// Int.construct: underscores dropped, 0x/0b/0o/0 prefixes, sexagesimal; nil on overflow (a String then).
    static func int(_ string: String) -> Int? {
        let withSign = withoutUnderscores(string)
        if withSign == "0" { return 0 }
        let negative = withSign.hasPrefix("-")
        let hasSign = negative || withSign.hasPrefix("+")
        let body = withSign.dropFirst(hasSign ? 1 : 0)
        let sign = negative ? "-" : ""
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where body.hasPrefix(prefix) {
            return Int(sign + body.dropFirst(prefix.count), radix: radix)
        }
        if body.contains(":") { return sexagesimalInt(withSign) }
        return Int(withSign)
    }

    static func sexagesimalInt(_ string: String) -> Int? {
        var s = Substring(string), sign = 1
        if s.hasPrefix("-") { sign = -1; s = s.dropFirst() } else if s.hasPrefix("+") { s = s.dropFirst() }
        // Yams' order: from the last component, value += digit × base, base × 60 (nil where Yams would overflow).
        var value = 0, base = 1
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        for part in parts { guard Int(part, radix: 10) != nil else { return nil } }
        for (n, part) in parts.reversed().enumerated() {
            let (term, o1) = Int(part, radix: 10)!.multipliedReportingOverflow(by: base)
            let (sum, o2) = value.addingReportingOverflow(term)
            if o1 || o2 { return nil }
            value = sum
            if n < parts.count - 1 { let (b, o3) = base.multipliedReportingOverflow(by: 60); if o3 { return nil }; base = b }
        }
        return sign * value
    }

    /// Double.construct: .inf/.nan in any case, underscores dropped, sexagesimal, else Double(String).
    static func double(_ string: String) -> Double? {
        switch string.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default:
            let s = withoutUnderscores(string)
            guard s.contains(":") else { return Double(s) }
            var t = Substring(s), sign = 1.0
            if t.hasPrefix("-") { sign = -1; t = t.dropFirst() } else if t.hasPrefix("+") { t = t.dropFirst() }
            let parts = t.split(separator: ":", omittingEmptySubsequences: false).map { Double($0) }
            guard !parts.contains(where: { $0 == nil }) else { return nil }
            var value = 0.0, base = 1.0                  // Yams' order (the same rounding)
            for d in parts.reversed() { value = value + d! * base; base = base * 60 }
            return sign * value
        }
    }
}

extension Collection where Element: Equatable {
    /// Whether `other` occurs in this collection as a contiguous run (a substring test without Foundation).
    func contains<C: Collection>(subsequence other: C) -> Bool where C.Element == Element {
        guard !other.isEmpty else { return true }
        var i = startIndex
        while i != endIndex {
            if self[i...].starts(with: other) { return true }
            i = index(after: i)
        }
        return false
    }
}
