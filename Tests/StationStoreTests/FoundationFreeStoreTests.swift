import Foundation
import Testing
@testable import StationStore

/// The store's replacements of full-Foundation calls give what Foundation gave.
@Suite struct FoundationFreeStoreTests {
    /// `percentEncodedURIPath` keeps what `addingPercentEncoding(withAllowedCharacters: urlPathAllowed less ?#%)` kept.
    @Test func theImmutableURIPathIsEncodedAsFoundationEncodedIt() {
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "?#%")
        let paths = ["/var/lib/swapgate/station.sqlite", "/tmp/a b/c%d?e#f", "/data/é ü/日本/x.sqlite",
                     "/q/!$&'()*+,-./:=@_~;[]{}<>\"\\^`|", "/t/\u{1F50B}\ttab"]
        for path in paths {
            #expect(StationStore.percentEncodedURIPath(path) == path.addingPercentEncoding(withAllowedCharacters: allowed))
        }
        // Every ASCII character, one at a time.
        for byte in UInt8(1)...127 {
            let path = "/x" + String(UnicodeScalar(byte)) + "y"
            #expect(StationStore.percentEncodedURIPath(path) == path.addingPercentEncoding(withAllowedCharacters: allowed), "byte \(byte)")
        }
    }

    /// `stats().fileBytes` is the database and WAL sizes, as `attributesOfItem` gave them.
    @Test func fileBytesAreTheDatabaseAndWALSizes() async throws {
        let dir = try StoreDir(); defer { dir.remove() }
        let store = try dir.open()
        _ = try await store.appendEvents(makeEvents(0..<50, padding: 500))
        func size(_ path: String) -> Int64 {
            ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
        }
        let expected = size(dir.path) + size(dir.path + "-wal")
        #expect(expected > 0)
        #expect(try await store.stats().fileBytes == expected)
        try await store.close()
    }
}
