import CYaml
import Foundation
import Yams

/// The configuration file as a parsed YAML document (Yams' node tree), for loading and for showing it
/// with its secrets redacted. Both work on the parsed document, never on the text: a secret written as a
/// block scalar (`password: >-` and the value on the next line), under a quoted key (`"api_key": …`),
/// in flow style or through an alias is found the same way as a plain `password: x`.
///
/// Aliases are bounded: composing keeps an alias as a reference to its anchor (cheap), but converting
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

    /// Parses one YAML document (nil when the text has none).
    public static func compose(_ yaml: String) throws -> Node? {
        // Bounded before composing: the composer hashes a collection key whole (its duplicate-key check), so
        // an alias bomb in key position would hang it before the conversion's count applies.
        try preflight(yaml)
        return try Yams.compose(yaml: yaml)
    }

    /// The document as plain values (`[String: Any]`, `[Any]`, scalars as Yams resolves them), counting every
    /// node visited (an alias counts its whole target again) and throwing `TooLarge` past `maxNodes`.
    public static func plain(_ node: Node) throws -> Any {
        var budget = maxNodes
        return try plain(node, budget: &budget)
    }

    static func plain(_ node: Node, budget: inout Int) throws -> Any {
        budget -= 1
        if budget < 0 { throw TooLarge() }
        switch node {
        case .scalar:
            return node.any
        case let .sequence(seq):
            var out: [Any] = []
            for n in seq { out.append(try plain(n, budget: &budget)) }
            return out
        case let .mapping(map):
            var out: [String: Any] = [:]
            var merged: [String: Any] = [:]
            for (k, v) in map {
                guard case let .scalar(key) = k else { throw ComplexKey() }
                budget -= 1
                if budget < 0 { throw TooLarge() }
                if key.string == "<<", key.style == .plain || key.style == .any {
                    // `<<: *defaults` (or a list of them): keys not set in this mapping come from there.
                    let sources: [Node] = v.sequence.map { Array($0) } ?? [v]
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
        case .alias:
            // compose() resolves aliases to their anchored node; an unresolved one is not a value.
            throw ComplexKey()
        }
    }

    /// Whether a mapping key names a secret: password, passphrase, api key, token, secret, credential,
    /// private key, anywhere in the key and in any case — except `…_file`, which name a file, not a secret.
    public static func isSecretKey(_ key: String) -> Bool {
        let k = key.lowercased().replacingOccurrences(of: "-", with: "_")
        if k.hasSuffix("_file") { return false }
        return ["password", "passwd", "passphrase", "api_key", "apikey", "token", "secret", "credential", "private_key"]
            .contains { k.contains($0) }
    }

    /// The document re-emitted as YAML with the value of every secret key (at any depth, whatever its type or
    /// style) replaced by `<redacted>`. Comments and anchors are not kept; aliases appear expanded.
    /// Fails closed: text that cannot be parsed or is too large is not shown at all.
    public static func redacted(_ yaml: String) -> String {
        do {
            guard let root = try compose(yaml) else { return "" }
            var budget = maxNodes
            let clean = try redact(root, budget: &budget)
            return try Yams.serialize(node: clean, allowUnicode: true)
        } catch {
            // Not the parser's message: it quotes the text around the problem, which may be a secret.
            return "# <redacted: the file cannot be shown without its secrets (\(error is TooLarge ? "too large" : "not valid YAML"))>"
        }
    }

    static func redact(_ node: Node, budget: inout Int) throws -> Node {
        budget -= 1
        if budget < 0 { throw TooLarge() }
        switch node {
        case var .scalar(s):
            s.anchor = nil
            return .scalar(s)
        case var .sequence(seq):
            var nodes: [Node] = []
            for n in seq { nodes.append(try redact(n, budget: &budget)) }
            seq = Node.Sequence(nodes, seq.tag, seq.style, seq.mark)
            return .sequence(seq)
        case let .mapping(map):
            var pairs: [(Node, Node)] = []
            for (k, v) in map {
                guard case .scalar = k else { throw ComplexKey() }
                let key = try redact(k, budget: &budget)
                if let name = k.scalar?.string, isSecretKey(name) {
                    pairs.append((key, Node.scalar(.init("<redacted>"))))
                } else {
                    pairs.append((key, try redact(v, budget: &budget)))
                }
            }
            return .mapping(Node.Mapping(pairs, map.tag, map.style, map.mark))
        case .alias:
            throw ComplexKey()
        }
    }

    /// Walks the parser's events once, before anything is built: the size of every anchored node (its
    /// aliases included) is counted, so an alias bomb is refused in time linear in the text; a mapping key
    /// that is not a plain scalar (a collection, or an alias) is refused too — no configuration key is one,
    /// and the composer would hash such a key whole.
    static func preflight(_ yaml: String) throws {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(yaml.utf8)
        try bytes.withUnsafeBufferPointer { buf in
            yaml_parser_set_input_string(&parser, buf.baseAddress, buf.count)
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
            func name(_ p: UnsafeMutablePointer<yaml_char_t>?) -> String? { p.map { String(cString: $0) } }
            var done = false
            while !done {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return }   // the composer reports the syntax error
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT: done = true
                case YAML_SCALAR_EVENT:
                    if let a = name(event.data.scalar.anchor) { anchors[a] = 1 }
                    try add(1, isScalar: true)
                case YAML_ALIAS_EVENT:
                    try add(name(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1, isScalar: false)
                case YAML_SEQUENCE_START_EVENT:
                    stack.append((1, 0, false, name(event.data.sequence_start.anchor)))
                case YAML_MAPPING_START_EVENT:
                    stack.append((1, 0, true, name(event.data.mapping_start.anchor)))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let frame = stack.popLast() else { break }
                    if let a = frame.anchor { anchors[a] = frame.count }
                    try add(frame.count, isScalar: false)
                default: break
                }
            }
        }
    }
}
