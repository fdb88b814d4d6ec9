/// Left-aligned text tables for the command-line tools (swapctl, swapgate's offline store commands).
public enum TextTable {
    /// The header, a rule of dashes, then the rows; columns two spaces apart, blanks trimmed at both ends.
    public static func render(_ header: [String], _ rows: [[String]]) -> String {
        var widths = header.map(\.count)
        for row in rows { for (i, c) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], c.count) } }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                if i > 0 { out += "  " }
                out += cell
                if i < widths.count, cell.count < widths[i] { out += String(repeating: " ", count: widths[i] - cell.count) }
            }
            while out.last == " " { out.removeLast() }
            while out.first == " " { out.removeFirst() }
            return out
        }
        return ([line(header), line(widths.map { String(repeating: "-", count: $0) })] + rows.map(line)).joined(separator: "\n")
    }
}
