import Foundation
import Testing
@testable import GatewayCore

/// GatewayCore and swapgate no longer use full Foundation (String(format:), NSString paths, trimmingCharacters,
/// FileHandle): what replaced them (GatewayCore/Support/FoundationFree.swift) must give what Foundation gave.
@Suite struct FoundationFreeGatewayTests {
    @Test func hexIsWhatStringFormatWrote() {
        let bytes: [UInt8] = [0, 1, 9, 10, 15, 16, 127, 128, 171, 254, 255]
        #expect(lowercaseHex(bytes) == bytes.map { String(format: "%02x", $0) }.joined())
        #expect(lowercaseHex(bytes) == "0001090a0f107f80abfeff")
        #expect(lowercaseHex([UInt8]()) == "")
    }

    @Test func parentDirectoryIsWhatNSStringGave() {
        for path in ["/var/lib/swapgate/station.sqlite", "station.sqlite", "/station.sqlite", "/", "run/swapgate/control.sock",
                     "/var/lib/swapgate/", "/var/lib//swapgate/x", "./x", "../x/y", "a/b/", "//x", "a//b//"] {
            #expect(parentDirectory(path) == (path as NSString).deletingLastPathComponent, "\(path)")
        }
    }

    @Test func technicianLinesAreTrimmedAsCharacterSetWhitespacesTrims() throws {
        // Every scalar, at both ends (CharacterSet.whitespaces holds U+200B, which is not Unicode White_Space).
        var differ: [UInt32] = []
        for v in UInt32(0) ... 0x10FFFF {
            guard let u = Unicode.Scalar(v) else { continue }
            let raw = String(u) + "a" + String(u)
            if raw.trimmingWhitespaces() != raw.trimmingCharacters(in: .whitespaces) { differ.append(v) }
        }
        #expect(differ.isEmpty, "\(differ.prefix(20))")
        for raw in [" ana ", "\tana\t", "\u{00A0}ana\u{3000}", "   ", "", "ana\n", "\u{2003}ana", "a n a", "\u{200B}ana\u{200B}"] {
            #expect(raw.trimmingWhitespaces() == raw.trimmingCharacters(in: .whitespaces), "\(Array(raw.unicodeScalars))")
            #expect(Substring(raw).trimmingWhitespaces() == Substring(raw).trimmingCharacters(in: .whitespaces))
        }
        let digest = String(repeating: "ab", count: 32)
        let table = try Technicians.parse(" ana\u{00A0}: \(digest)\t# comment\n\n  # only a comment\n")
        #expect(table.keys.sorted() == ["ana"])
        #expect(table["ana"] == [UInt8](repeating: 0xAB, count: 32))
    }

    @Test func writeAllWritesEveryByte() async throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        let readEnd = fds[0], writeEnd = fds[1]
        defer { close(readEnd) }
        let text = String(repeating: "swapgate: line ✓\n", count: 1000)   // more than one write may take
        let reader = Task.detached { () -> [UInt8] in
            var out: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 4096)
            while true {
                let n = buffer.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if n <= 0 { return out }
                out += buffer[0 ..< n]
            }
        }
        writeAll(text, to: writeEnd)
        close(writeEnd)
        let got = await reader.value
        #expect(got == Array(text.utf8))
    }
}
