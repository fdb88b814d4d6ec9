import Foundation
import TestSupport
@testable import StationStore

/// A temporary directory with a database path in it; removed by `remove()`.
struct StoreDir {
    let dir: TempDir
    var path: String { dir.path("station.sqlite") }

    init() throws { dir = try TempDir("stationstore") }

    func open(maxPageCount: Int? = nil) throws -> StationStore {
        try StationStore(path: path, maxPageCount: maxPageCount)
    }

    func remove() { dir.remove() }
}

let baseDate = Date(timeIntervalSince1970: 1_795_000_000.123)

/// An event whose data is a small JSON object naming `n`, padded to `padding` bytes.
func makeEvent(_ n: Int, type: String = "battery.inserted", padding: Int = 0) -> NewEvent {
    var json = #"{"n":\#(n)"#
    if padding > 0 { json += #","pad":""# + String(repeating: "x", count: padding) + #"""# }
    json += "}"
    return NewEvent(type: type, timestamp: baseDate.addingTimeInterval(Double(n)), data: Array(json.utf8))
}

func makeEvents(_ range: Range<Int>, type: String = "battery.inserted", padding: Int = 0) -> [NewEvent] {
    range.map { makeEvent($0, type: type, padding: padding) }
}

/// Every event in the log, lowest seq first.
func allEvents(_ store: StationStore) async throws -> [StoredEvent] {
    try await store.events(fromSeq: nil, type: nil, limit: Int.max, newestFirst: false)
}

func isDiskFull(_ error: any Error) -> Bool {
    if case StoreError.diskFull = error { return true }
    return false
}

func fileSize(_ path: String) -> Int64 {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.int64Value ?? 0
}

struct Boom: Error {}
