// The order in which Foundation's JSONSerialization `.sortedKeys` writes object keys, without full Foundation
// (its comparison, `compare(_:options: [.numeric, .caseInsensitive, .forcedOrdering], locale: root)`, lives in
// full Foundation and runs through ICU: see docs/board-footprint.md). Measured against Foundation's own on Linux
// (ABSProtocolTests/SortedKeyOrderTests), it is ICU's root collation with numeric digit runs, ties broken as
// CoreFoundation's forced ordering breaks them:
//   1. primary: ASCII punctuation and symbols (in the order below), then digit runs by numeric value, then letters
//      a–z whatever their case and accents; a string that is a prefix of the other comes first;
//   2. secondary: the first accent difference (no accent first, then the accents in ICU's order);
//   3. the first case difference (lowercase first) or difference in leading zeros (fewer first), whichever comes
//      first in the string;
//   4. byte order.
// Exact for ASCII keys (cabinet ids, battery families, every contract key) and for Latin letters with one accent;
// other non-ASCII scalars (ß, æ, CJK…) sort after the letters by scalar value, which ICU does not.

enum SortedKeyOrder {
    /// a < b in JSONSerialization's `.sortedKeys` order.
    static func precedes(_ a: String, _ b: String) -> Bool { compare(a, b) < 0 }

    static func compare(_ a: String, _ b: String) -> Int {
        let ea = elements(a), eb = elements(b)
        // 1. primary
        for (x, y) in zip(ea, eb) {
            let c = comparePrimary(x, y)
            if c != 0 { return c }
        }
        if ea.count != eb.count { return ea.count < eb.count ? -1 : 1 }
        // 2. secondary (accents)
        for (x, y) in zip(ea, eb) where x.secondary != y.secondary { return x.secondary < y.secondary ? -1 : 1 }
        // 3. case and leading zeros: the first difference
        for (x, y) in zip(ea, eb) {
            if x.tertiary != y.tertiary { return x.tertiary < y.tertiary ? -1 : 1 }
        }
        // 4. bytes
        if a.utf8.elementsEqual(b.utf8) { return 0 }
        return a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1
    }

    struct Element {
        /// A digit run: its digits without leading zeros (value order: length, then digits); nil for a character.
        var number: [UInt8]?
        var primary: Int
        var secondary: Int
        /// Case (0 lower, 1 upper) for a character; the count of digits for a number.
        var tertiary: Int
    }

    static func comparePrimary(_ x: Element, _ y: Element) -> Int {
        if let nx = x.number, let ny = y.number {
            if nx.count != ny.count { return nx.count < ny.count ? -1 : 1 }
            if nx == ny { return 0 }
            return nx.lexicographicallyPrecedes(ny) ? -1 : 1
        }
        if x.primary != y.primary { return x.primary < y.primary ? -1 : 1 }
        return 0
    }

    /// ASCII punctuation and symbols in ICU root order; digits come after them, letters after the digits.
    private static let symbols: [UInt8] = Array(#" _-,;:!?.'"()[]{}@*/\&#%`^+<=>|~$"#.utf8)
    static let digitPrimary = 100
    static let letterPrimaryBase = 200
    static let otherPrimaryBase = 1_000

    static func asciiPrimary(_ b: UInt8) -> (primary: Int, tertiary: Int) {
        switch b {
        case UInt8(ascii: "a") ... UInt8(ascii: "z"): return (letterPrimaryBase + Int(b - UInt8(ascii: "a")), 0)
        case UInt8(ascii: "A") ... UInt8(ascii: "Z"): return (letterPrimaryBase + Int(b - UInt8(ascii: "A")), 1)
        default:
            if let i = symbols.firstIndex(of: b) { return (10 + i, 0) }
            return (Int(b) - 128, 0)   // control characters: before everything
        }
    }

    static func elements(_ s: String) -> [Element] {
        var out: [Element] = []
        var digits: [UInt8] = []
        func flushDigits() {
            guard !digits.isEmpty else { return }
            let count = digits.count
            let significant = Array(digits.drop { $0 == UInt8(ascii: "0") })
            out.append(Element(number: significant, primary: digitPrimary, secondary: 0, tertiary: count))
            digits.removeAll()
        }
        for scalar in s.unicodeScalars {
            let v = scalar.value
            if v >= 0x30 && v <= 0x39 { digits.append(UInt8(v)); continue }
            flushDigits()
            if v < 0x80 {
                let (p, t) = asciiPrimary(UInt8(v))
                out.append(Element(number: nil, primary: p, secondary: 0, tertiary: t))
            } else if let mark = accentRank(v) {
                // A combining accent after its letter (decomposed input).
                if let last = out.indices.last, out[last].number == nil, out[last].secondary == 0 {
                    out[last].secondary = mark
                } else {
                    out.append(Element(number: nil, primary: otherPrimaryBase + Int(v), secondary: 0, tertiary: 0))
                }
            } else if let (base, mark) = decomposition(scalar) {
                let (p, t) = asciiPrimary(base)
                out.append(Element(number: nil, primary: p, secondary: mark, tertiary: t))
            } else {
                out.append(Element(number: nil, primary: otherPrimaryBase + Int(v), secondary: 0, tertiary: 0))
            }
        }
        flushDigits()
        return out
    }

    /// Combining accents (U+0300–U+036F) in ICU root collation's secondary order (measured), 1-based.
    private static let accentOrder: [UInt32] = [
        0x34f, 0x332, 0x313, 0x343, 0x314, 0x301, 0x341, 0x300, 0x340, 0x306, 0x302, 0x30c, 0x30a, 0x342, 0x308, 0x344,
        0x30b, 0x303, 0x307, 0x338, 0x327, 0x328, 0x304, 0x30d, 0x30e, 0x312, 0x315, 0x31a, 0x33d, 0x33e, 0x33f, 0x346,
        0x34a, 0x34b, 0x34c, 0x350, 0x351, 0x352, 0x357, 0x35b, 0x35d, 0x35e, 0x316, 0x317, 0x318, 0x319, 0x31c, 0x31d,
        0x31e, 0x31f, 0x320, 0x329, 0x32a, 0x32b, 0x32c, 0x32f, 0x333, 0x33a, 0x33b, 0x33c, 0x347, 0x348, 0x349, 0x34d,
        0x34e, 0x353, 0x354, 0x355, 0x356, 0x359, 0x35a, 0x35c, 0x35f, 0x362, 0x336, 0x337, 0x335, 0x305, 0x309, 0x30f,
        0x310, 0x311, 0x31b, 0x321, 0x322, 0x323, 0x324, 0x325, 0x326, 0x32d, 0x32e, 0x330, 0x331, 0x334, 0x339, 0x345,
        0x358, 0x360, 0x361, 0x363, 0x368, 0x369, 0x364, 0x36a, 0x365, 0x36b, 0x366, 0x36c, 0x36d, 0x367, 0x36e, 0x36f,
    ]

    static func accentRank(_ v: UInt32) -> Int? {
        guard v >= 0x300 && v <= 0x36F else { return nil }
        return accentOrder.firstIndex(of: v).map { $0 + 1 }
    }

    /// A precomposed Latin letter as its ASCII letter and accent rank (é → e, acute), found by canonical
    /// equivalence (Swift compares Strings canonically); nil when it is not one ASCII letter plus one accent.
    static func decomposition(_ scalar: Unicode.Scalar) -> (UInt8, Int)? {
        let v = scalar.value
        guard (0xC0 ... 0x24F).contains(v) || (0x1E00 ... 0x1EFF).contains(v) else { return nil }
        let composed = String(Character(scalar))
        for base in Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ".utf8) {
            for (i, mark) in accentOrder.enumerated() {
                var candidate = String(UnicodeScalar(base))
                candidate.unicodeScalars.append(Unicode.Scalar(mark)!)
                if candidate == composed { return (base, i + 1) }
            }
        }
        return nil
    }
}
