import Foundation
import Testing
import TestSupport
@testable import GatewayConfig

/// The configuration's YAML on libyaml (issue 13: Yams' Swift layer needed full Foundation and ICU). What every
/// scalar becomes, what a document loads and shows redacted, and every error text are pinned from Yams 6.2.2
/// itself (a throwaway program ran the previous YAMLDocument on these inputs before Yams was removed); hostile
/// files give an error with its line, never a crash.
@Suite struct YAMLDocumentTests {
    /// A loaded value with its type, the way the answers were pinned.
    static func describe(_ v: Any) -> String {
        switch v {
        case let b as Bool: return "Bool(\(b))"
        case let i as Int: return "Int(\(i))"
        case let d as Double: return "Double(\(d))"
        case let s as String: return "String(\(s.debugDescription))"
        case is YAMLDocument.Null: return "Null(\(v))"
        case let d as Date: return "Date(\(d) \(d.timeIntervalSince1970))"
        case let a as [Any]: return "[" + a.map(describe).joined(separator: ", ") + "]"
        case let m as [String: Any]: return "{" + m.keys.sorted().map { "\($0): \(describe(m[$0]!))" }.joined(separator: ", ") + "}"
        default: return "\(type(of: v))(\(v))"
        }
    }

    static func load(_ yaml: String) -> String {
        do { return try YAMLDocument.compose(yaml).map(YAMLDocument.plain).map(describe) ?? "nil" } catch { return "ERROR \(error)" }
    }

    /// `v: <text>`: the value Yams' default resolver and constructor gave (YAML 1.1 booleans, 0o/0x/0b and
    /// sexagesimal ints, `08` a float, `-0` a string, overflow a string, timestamps as dates…).
    static let scalars: [(String, String)] = [
        ("true", "Bool(true)"),
        ("True", "Bool(true)"),
        ("TRUE", "Bool(true)"),
        ("tRuE", "String(\"tRuE\")"),
        ("yes", "Bool(true)"),
        ("Yes", "Bool(true)"),
        ("YES", "Bool(true)"),
        ("no", "Bool(false)"),
        ("No", "Bool(false)"),
        ("NO", "Bool(false)"),
        ("on", "Bool(true)"),
        ("On", "Bool(true)"),
        ("ON", "Bool(true)"),
        ("off", "Bool(false)"),
        ("Off", "Bool(false)"),
        ("OFF", "Bool(false)"),
        ("false", "Bool(false)"),
        ("False", "Bool(false)"),
        ("FALSE", "Bool(false)"),
        ("y", "String(\"y\")"),
        ("n", "String(\"n\")"),
        ("Y", "String(\"Y\")"),
        ("~", "Null(<null>)"),
        ("null", "Null(<null>)"),
        ("Null", "Null(<null>)"),
        ("NULL", "Null(<null>)"),
        ("nUll", "String(\"nUll\")"),
        (" ", "Null(<null>)"),
        ("\"null\"", "String(\"null\")"),
        ("\'~\'", "String(\"~\")"),
        ("\"\"", "String(\"\")"),
        ("\'\'", "String(\"\")"),
        ("0", "Int(0)"),
        ("-0", "String(\"-0\")"),
        ("+0", "String(\"+0\")"),
        ("00", "Int(0)"),
        ("007", "Int(7)"),
        ("08", "Double(8.0)"),
        ("09", "Double(9.0)"),
        ("0o17", "Int(15)"),
        ("0o19", "String(\"0o19\")"),
        ("0b101", "Int(5)"),
        ("0b", "String(\"0b\")"),
        ("-0b11", "Int(-3)"),
        ("0x1F", "Int(31)"),
        ("0x1f", "Int(31)"),
        ("-0x1F", "Int(-31)"),
        ("+0x1F", "Int(31)"),
        ("0x", "String(\"0x\")"),
        ("0xG", "String(\"0xG\")"),
        ("1_000", "Int(1000)"),
        ("1__0", "Int(10)"),
        ("_1", "String(\"_1\")"),
        ("1_", "Int(1)"),
        ("+1", "Int(1)"),
        ("-1", "Int(-1)"),
        ("12", "Int(12)"),
        ("-12:30", "Int(-750)"),
        ("1:30", "Int(90)"),
        ("190:20:30", "Int(685230)"),
        ("1:70", "String(\"1:70\")"),
        ("9223372036854775807", "Int(9223372036854775807)"),
        ("9223372036854775808", "String(\"9223372036854775808\")"),
        ("-9223372036854775808", "Int(-9223372036854775808)"),
        ("-9223372036854775809", "String(\"-9223372036854775809\")"),
        ("99999999999999999999", "String(\"99999999999999999999\")"),
        ("1e3", "Double(1000.0)"),
        ("1E3", "Double(1000.0)"),
        ("1e+3", "Double(1000.0)"),
        ("1e-3", "Double(0.001)"),
        ("1.5e3", "Double(1500.0)"),
        (".5", "Double(0.5)"),
        (".5e+3", "Double(500.0)"),
        (".5e3", "String(\".5e3\")"),
        ("-.5", "String(\"-.5\")"),
        ("1.", "Double(1.0)"),
        ("1.0", "Double(1.0)"),
        ("-1.0", "Double(-1.0)"),
        ("+1.5", "Double(1.5)"),
        ("1_000.5", "Double(1000.5)"),
        ("1.2.3", "String(\"1.2.3\")"),
        ("1e", "String(\"1e\")"),
        ("e3", "String(\"e3\")"),
        (".inf", "Double(inf)"),
        (".Inf", "Double(inf)"),
        (".INF", "Double(inf)"),
        ("-.inf", "Double(-inf)"),
        ("-.Inf", "Double(-inf)"),
        ("+.inf", "Double(inf)"),
        (".iNf", "String(\".iNf\")"),
        ("inf", "String(\"inf\")"),
        (".nan", "Double(nan)"),
        (".NaN", "Double(nan)"),
        (".NAN", "Double(nan)"),
        ("-.nan", "String(\"-.nan\")"),
        ("nan", "String(\"nan\")"),
        ("190:20:30.15", "Double(685230.15)"),
        ("1:30.5", "Double(90.5)"),
        ("0.1", "Double(0.1)"),
        ("3.14159265358979", "Double(3.14159265358979)"),
        ("1e400", "Double(inf)"),
        ("-1e400", "Double(-inf)"),
        ("0.0000001", "Double(1e-07)"),
        ("123456789012345678901234567890", "String(\"123456789012345678901234567890\")"),
        ("\"123\"", "String(\"123\")"),
        ("\'123\'", "String(\"123\")"),
        ("\"true\"", "String(\"true\")"),
        ("\'yes\'", "String(\"yes\")"),
        ("\"1.5\"", "String(\"1.5\")"),
        ("!!str 123", "String(\"123\")"),
        ("!!int \"42\"", "String(\"42\")"),
        ("!!float 1", "Double(1.0)"),
        ("!!bool yes", "Bool(true)"),
        ("!!null \"\"", "String(\"\")"),
        ("!!str", "String(\"\")"),
        ("2001-12-14", "Date(2001-12-14 00:00:00 +0000 1008288000.0)"),
        ("2001-12-14t21:59:43.10-05:00", "Date(2001-12-15 02:59:43 +0000 1008385183.1)"),
        ("2001-12-14 21:59:43.10 -5", "Date(2001-12-15 02:59:43 +0000 1008385183.1)"),
        ("2002-12-14", "Date(2002-12-14 00:00:00 +0000 1039824000.0)"),
        ("2024-13-45", "Date(2025-02-14 00:00:00 +0000 1739491200.0)"),
        ("=", "String(\"=\")"),
        ("<<", "String(\"<<\")"),
        ("hello world", "String(\"hello world\")"),
        ("hello # comment", "String(\"hello\")"),
        ("\'it\'\'s\'", "String(\"it\\\'s\")"),
        ("\"tab\\there\"", "String(\"tab\\there\")"),
        ("|", "String(\"\")"),
        ("0x_1F", "Int(31)"),
        ("0b_1", "Int(1)"),
        ("0o_7", "Int(7)"),
        ("+.5", "String(\"+.5\")"),
        ("-.5e-3", "String(\"-.5e-3\")"),
        ("1_2.3_4", "Double(12.34)"),
        ("0.", "Double(0.0)"),
        ("+0.0", "Double(0.0)"),
        ("-0.0", "Double(-0.0)"),
        ("00.5", "Double(0.5)"),
        ("1:2", "Int(62)"),
        ("-1:2", "Int(-62)"),
    ]

    @Test func scalarsResolveAsYamsResolvedThem() {
        for (text, expected) in Self.scalars {
            #expect(Self.load("v: " + text) == "{v: \(expected)}", "v: \(text)")
        }
        // The table is not vacuous: it has every kind.
        for kind in ["Bool(true)", "Bool(false)", "Int(", "Double(", "Null(", "String(", "Date("] {
            #expect(Self.scalars.contains { $0.1.hasPrefix(kind) }, "\(kind)")
        }
    }

    /// (document, what it loads to or its error, what `redacted` shows): merge keys (one and a list), a quoted `<<`
    /// (not a merge), block scalars, quoted keys, flow style, anchors and aliases (redefined too), tags, duplicate
    /// keys, undefined aliases, a second document, tabs, unterminated quotes, control characters.
    static let documents: [(String, String, String)] = [
        ("a: 1\na: 2",
         "ERROR Parser: expected all keys to be unique but found the following duplicated key(s): \'a\' (in the mapping at line 1, column 1)",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: 1\n\"a\": 2",
         "ERROR Parser: expected all keys to be unique but found the following duplicated key(s): \'a\' (in the mapping at line 1, column 1)",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: 1\n1: x\n\"1\": y",
         "{1: String(\"y\"), a: Int(1)}",
         "a: 1\n1: x\n\"1\": y\n"),
        ("station: [unclosed",
         "ERROR 2:1: error: parser: while parsing a flow sequence in line 1, column 10\ndid not find expected \',\' or \']\':\nstation: [unclosed\n^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: \"unterminated\nb: 2",
         "ERROR 2:5: error: scanner: while scanning a quoted scalar in line 1, column 4\nfound unexpected end of stream:\nb: 2\n    ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: \'x\n",
         "ERROR 2:1: error: scanner: while scanning a quoted scalar in line 1, column 4\nfound unexpected end of stream:\na: \'x\n^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a:\n\tb: 1",
         "ERROR 2:1: error: scanner: while scanning for the next token in line 2, column 1\nfound character that cannot start any token:\n\tb: 1\n^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: 1\n---\nb: 2",
         "ERROR 2:1: error: composer: expected a single document in the stream in line 1, column 1\nbut found another document:\n---\n^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("---\na: 1\n...",
         "{a: Int(1)}",
         "a: 1\n"),
        ("",
         "nil",
         ""),
        ("# only a comment",
         "nil",
         ""),
        ("~",
         "Null(<null>)",
         "~\n"),
        ("a: *nope",
         "ERROR 1:4: error: composer: found undefined alias:\na: *nope\n   ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("base: &b {host: h, port: 1}\nm:\n  <<: *b\n  port: 2",
         "{base: {host: String(\"h\"), port: Int(1)}, m: {host: String(\"h\"), port: Int(2)}}",
         "base:\n  host: h\n  port: 1\nm:\n  <<:\n    host: h\n    port: 1\n  port: 2\n"),
        ("b1: &b1 {x: 1, y: 1}\nb2: &b2 {y: 2, z: 2}\nm:\n  <<: [*b1, *b2]\n  z: 3",
         "{b1: {x: Int(1), y: Int(1)}, b2: {y: Int(2), z: Int(2)}, m: {x: Int(1), y: Int(1), z: Int(3)}}",
         "b1:\n  x: 1\n  y: 1\nb2:\n  y: 2\n  z: 2\nm:\n  <<:\n  - x: 1\n    y: 1\n  - y: 2\n    z: 2\n  z: 3\n"),
        ("m:\n  \"<<\": {x: 1}",
         "{m: {<<: {x: Int(1)}}}",
         "m:\n  \"<<\":\n    x: 1\n"),
        ("key: |\n  line1\n  line2\nfold: >-\n  a\n  b\npassword: >-\n  s3cret\n\"api_key\": k\nt: &t tok\nsecret_x: *t\nlist: [1, \"2\", three, {token: x}]\nempty:\nnum: 0x1F\nq: \"quoted\"\ns: \'single\'\nu: \"é ü\"\nml: \"x\\ny\"\nnested:\n  - a\n  - [b, c]\n  - {d: e}\ntagged: !!str 12\ncustom: !foo bar",
         "{api_key: String(\"k\"), custom: String(\"bar\"), empty: Null(<null>), fold: String(\"a b\"), key: String(\"line1\\nline2\\n\"), list: [Int(1), String(\"2\"), String(\"three\"), {token: String(\"x\")}], ml: String(\"x\\ny\"), nested: [String(\"a\"), [String(\"b\"), String(\"c\")], {d: String(\"e\")}], num: Int(31), password: String(\"s3cret\"), q: String(\"quoted\"), s: String(\"single\"), secret_x: String(\"tok\"), t: String(\"tok\"), tagged: String(\"12\"), u: String(\"é ü\")}",
         "key: |\n  line1\n  line2\nfold: >-\n  a b\npassword: <redacted>\n\"api_key\": <redacted>\nt: tok\nsecret_x: <redacted>\nlist:\n- 1\n- \"2\"\n- three\n- token: <redacted>\nempty:\nnum: 0x1F\nq: \"quoted\"\ns: \'single\'\nu: \"é ü\"\nml: \"x\\ny\"\nnested:\n- a\n- - b\n  - c\n- d: e\ntagged: 12\ncustom: bar\n"),
        ("odoo: {base_url: \"http://x\", api_key: k-123, database: db}\nmqtt: {username: u, password: \"p w\"}",
         "{mqtt: {password: String(\"p w\"), username: String(\"u\")}, odoo: {api_key: String(\"k-123\"), base_url: String(\"http://x\"), database: String(\"db\")}}",
         "odoo:\n  base_url: \"http://x\"\n  api_key: <redacted>\n  database: db\nmqtt:\n  username: u\n  password: <redacted>\n"),
        ("a: b: c",
         "ERROR 1:5: error: scanner: mapping values are not allowed in this context:\na: b: c\n    ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: \"\\q\"",
         "ERROR 1:5: error: scanner: while parsing a quoted scalar in line 1, column 4\nfound unknown escape character:\na: \"\\q\"\n    ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("x: @bad",
         "ERROR 1:4: error: scanner: while scanning for the next token in line 1, column 4\nfound character that cannot start any token:\nx: @bad\n   ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: x\u{01}y\n",
         "ERROR 1:5: error: reader: control characters are not allowed:\na: x\u{01}y\n    ^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("\u{01}",
         "ERROR 1:1: error: reader: control characters are not allowed:\n\u{01}\n^",
         "# <redacted: the file cannot be shown without its secrets (not valid YAML)>"),
        ("a: 1\r\nb: 2\r\n",
         "{a: Int(1), b: Int(2)}",
         "a: 1\nb: 2\n"),
        ("a: {}\nb: []\nc: \'\'\npassword: \'\'\ntoken: []\nsecret: {}",
         "{a: {}, b: [], c: String(\"\"), password: String(\"\"), secret: {}, token: []}",
         "a: {}\nb: []\nc: \'\'\npassword: <redacted>\ntoken: <redacted>\nsecret: <redacted>\n"),
        ("a: !foo [1, 2]\nb: !!set {x, y}",
         "{a: [Int(1), Int(2)], b: {x: Null(<null>), y: Null(<null>)}}",
         "a: !foo\n- 1\n- 2\nb: !!set\n  x:\n  y:\n"),
        ("a: &x 1\nb: *x\nc: &x 2\nd: *x",
         "{a: Int(1), b: Int(1), c: Int(2), d: Int(2)}",
         "a: 1\nb: 1\nc: 2\nd: 2\n"),
        ("long: \"word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word \"",
         "{long: String(\"word word word word word word word word word word word word word word word word word word word word word word word word word word word word word word \")}",
         "long: \"word word word word word word word word word word word word word word word\n  word word word word word word word word word word word word word word word \"\n"),
    ]

    @Test func documentsLoadAndShowAsWithYams() {
        for (yaml, loaded, shown) in Self.documents {
            #expect(Self.load(yaml) == loaded, "\(yaml.debugDescription)")
            #expect(YAMLDocument.redacted(yaml) == shown, "\(yaml.debugDescription)")
        }
    }

    /// Collections nested past 1000 levels: refused with the line, as Yams' libyaml refused them (Debian's has no
    /// such limit; without one, composing would recurse until the stack overflows).
    @Test func deepNestingIsRefusedWithItsLine() {
        let block = (0 ..< 1001).map { String(repeating: "  ", count: $0) + "k:\n" }.joined() + String(repeating: "  ", count: 1001) + "v"
        #expect(Self.load(block).hasPrefix("ERROR 1000:1999: error: parser: while parsing in line 1000, column 1999\nMaximum nesting level reached"), "\(Self.load(block).prefix(200))")
        let dashes = String(repeating: "- ", count: 1200) + "x"
        #expect(Self.load(dashes).hasPrefix("ERROR 1:1999: error: parser: while parsing in line 1, column 1999\nMaximum nesting level reached"), "\(Self.load(dashes).prefix(200))")
        let hostile = "a: " + String(repeating: "[", count: 200_000) + String(repeating: "]", count: 200_000)
        #expect(Self.load(hostile).hasPrefix("ERROR 1:5: error: parser: while parsing in line 1, column 5\nMaximum nesting level reached"), "\(Self.load(hostile).prefix(200))")
        // Within the bound it loads (flow collections count against it differently, as in Yams).
        let fine = String(repeating: "[", count: 1000) + String(repeating: "]", count: 1000)
        #expect(Self.load(fine).hasPrefix("[[["), "\(Self.load(fine).prefix(200))")
        #expect(YAMLDocument.redacted(block).hasPrefix("# <redacted"))
    }

    /// A billion laughs in under 1 KB, in value and in key position, and a plain list past the bound.
    @Test func aliasBombsAndHugeDocumentsAreRefused() {
        let bomb = "a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            + "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e,*e,*e,*e,*e,*e,*e,*e]"
        #expect(Self.load(bomb) == "ERROR \(YAMLDocument.TooLarge())")
        #expect(YAMLDocument.redacted(bomb) == "# <redacted: the file cannot be shown without its secrets (too large)>")
        #expect(Self.load("x: &x [1, 2]\n? *x\n: 1") == "ERROR \(YAMLDocument.ComplexKey())")
        #expect(Self.load("[1, 2]: x") == "ERROR \(YAMLDocument.ComplexKey())")
        let long = "l: [" + Array(repeating: "1", count: YAMLDocument.maxNodes + 1).joined(separator: ", ") + "]"
        #expect(Self.load(long) == "ERROR \(YAMLDocument.TooLarge())")
        let within = "l: [" + Array(repeating: "1", count: 1000).joined(separator: ", ") + "]"
        #expect(Self.load(within).hasPrefix("{l: [Int(1), "))
    }

    /// A configuration's errors never quote a secret: a duplicated key anywhere in a file with a password (the
    /// message once quoted the whole file, as Yams did), and a syntax error on the secret's own line (the quoted
    /// line keeps its key, the value is `<redacted>`). A `…_file` key names a file and is quoted as it is.
    @Test func syntaxErrorsNeverQuoteASecret() throws {
        let base = "station: {id: TG-CFG-0001}\nabs: {allow_unsigned: true}\nstore: {path: /tmp/never-opened.sqlite}\n"
        for extra in [
            "mqtt:\n  password: hunter2-SECRET\nmqtt: {host: x}\n",
            "odoo: {api_key: hunter2-SECRET, api_key: other}\n",
            "mqtt:\n  password: \"hunter2-SECRET\n",
            "mqtt: {Password: 'hunter2-SECRET}\n",
            "odoo:\n  API-Key: hunter2-SECRET\n\tbase_url: x\n",
        ] {
            do { _ = try GatewayConfiguration.parse(base + extra); Issue.record("\(extra) loaded") } catch {
                #expect(!"\(error)".contains("hunter2"), "\(error)")
                #expect("\(error)".contains("not valid YAML"), "\(error)")
            }
        }
        #expect(YAMLText.redactedLine("  password: \"abc\n") == "  password: <redacted>\n")
        #expect(YAMLText.redactedLine("  ca_file: /etc/x\n") == "  ca_file: /etc/x\n")
        #expect(YAMLText.redactedLine("  password_file: /etc/x\n") == "  password_file: /etc/x\n")
        #expect(YAMLText.redactedLine("  host: x\n") == "  host: x\n")
    }

    /// Through the loader: a syntax error names the file key and keeps the parser's line; invalid UTF-8 is read
    /// as U+FFFD (never a crash) and then judged like any other text.
    @Test func theLoaderReportsSyntaxErrorsWithTheirLineAndSurvivesInvalidUTF8() throws {
        let base = "station: {id: TG-CFG-0001}\nabs: {allow_unsigned: true}\nstore: {path: /tmp/never-opened.sqlite}\n"
        for (extra, text) in [
            ("mqtt:\n\thost: x", "not valid YAML: 5:1: error: scanner: while scanning for the next token in line 5, column 1\nfound character that cannot start any token:\n\thost: x\n^"),
            ("mqtt: {host: \"x}\n", "not valid YAML: 5:1: error: scanner: while scanning a quoted scalar in line 4, column 14\nfound unexpected end of stream:\nmqtt: {host: \"x}\n^"),
            ("mqtt: {host: x, host: y}", "not valid YAML: Parser: expected all keys to be unique but found the following duplicated key(s): 'host' (in the mapping at line 4, column 8)"),
        ] {
            #expect(throws: ConfigurationErrors.self) { try GatewayConfiguration.parse(base + extra) }
            do { _ = try GatewayConfiguration.parse(base + extra); Issue.record("\(extra) loaded") } catch {
                #expect("\(error)".contains("  - file: " + text), "\(error)")
            }
        }
        let dir = try TempDir("swapgate-yaml")
        defer { dir.remove() }
        let path = dir.path("swapgate.yaml")
        try Data(Array(base.utf8) + Array("odoo: {database: \"d".utf8) + [0xFF, 0xFE] + Array("\"}\n".utf8)).write(to: URL(fileURLWithPath: path))
        let c = try GatewayConfiguration.load(path: path, environment: [:])
        #expect(c.odoo.database == "d\u{FFFD}\u{FFFD}")
        try Data(Array("station: {id: TG-".utf8) + [0xFF] + Array("}\nabs: {allow_unsigned: true}\n".utf8)).write(to: URL(fileURLWithPath: path))
        do { _ = try GatewayConfiguration.load(path: path, environment: [:]); Issue.record("loaded") } catch {
            #expect("\(error)".contains("station.id: must be printable ASCII"), "\(error)")
        }
    }
}
