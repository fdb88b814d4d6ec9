extension String {
    /// `trimmingCharacters(in: .whitespacesAndNewlines)` without full Foundation: Unicode White_Space, U+000A–U+000D,
    /// U+0085, U+2028, U+2029 and U+200B (zero width space: in Foundation's set, not White_Space; every scalar
    /// compared). Used by the configuration loader and swapctl for secrets and keys read from files.
    public func trimmingWhitespacesAndNewlines() -> String {
        func drop(_ c: Unicode.Scalar) -> Bool {
            switch c.value { case 0x0A ... 0x0D, 0x85, 0x200B, 0x2028, 0x2029: return true; default: return c.properties.isWhitespace }
        }
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[first ... last])
        return String(kept)
    }
}
