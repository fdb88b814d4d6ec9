import Acquisition
import Foundation
import GatewayCore
import ModbusLink
import StationDomain
import Testing

/// `cabinets:` in the configuration (issue 10 item 1) and the station-wide slot numbering, without I/O.
@Suite struct SeveralCabinetsConfigTests {
    static let base = """
    station: {id: TG-CFG-0002}
    abs: {allow_unsigned: true}
    store: {path: /tmp/never-opened.sqlite}

    """

    static func parse(_ yaml: String) throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(base + yaml, baseDirectory: "/tmp")
    }

    static func problems(_ yaml: String) -> [ConfigurationError] {
        do { _ = try parse(yaml); return [] } catch let e as ConfigurationErrors { return e.errors } catch { return [] }
    }

    @Test func theIssuesShapeParses() throws {
        let c = try Self.parse("""
        cabinets:
          - id: A
            transport: tcp
            host: 127.0.0.1
            port: 502
            unit: 1
          - id: B
            transport: tcp
            host: 127.0.0.1
            port: 502
            unit: 3
          - {id: C, transport: rtu, device: /dev/ttyS2, baud: 19200, expected_slots: 12}
        """)
        #expect(c.cabinets.map(\.id) == ["A", "B", "C"])
        #expect(c.cabinets.map(\.unit) == [1, 3, 1])
        let acq = c.acquisitions
        #expect(acq.map(\.unit) == [1, 3, 1])
        #expect(acq[0].transport == acq[1].transport)   // one bus
        #expect(acq[2].transport == .rtu(device: "/dev/ttyS2", baud: 19200, parity: .none, dataBits: 8, stopBits: 1))
        #expect(acq.map(\.meterEnabled) == [true, false, false])   // one meter: the first cabinet's bus
        #expect(acq[2].expectedSlotCount == 12)
    }

    @Test func theOldSingleCabinetIsCabinetA() throws {
        let c = try Self.parse("cabinet: {host: 10.0.0.9, port: 1502}")
        #expect(c.cabinets.count == 1)
        #expect(c.cabinet.id == "A" && c.cabinet.unit == 1)
        #expect(c.acquisition.transport == .tcp(host: "10.0.0.9", port: 1502))
        #expect(c.acquisition.unit == 1 && c.acquisition.meterEnabled)
        let none = try Self.parse("")
        #expect(none.cabinets.count == 1 && none.cabinet.id == "A")
    }

    @Test(arguments: [
        ("cabinet: {port: 502}\ncabinets: [{id: A}]", "cabinets"),                                   // both forms
        ("cabinets: [{id: A}, {id: A, port: 503}]", "cabinets[2].id"),                                // duplicate id
        ("cabinets: [{id: A}, {id: B}]", "cabinets[2].unit"),                                         // same bus, same unit
        ("cabinets: [{id: A, transport: rtu, device: /dev/x}, {id: B, transport: rtu, device: /dev/x}]", "cabinets[2].unit"),
        ("cabinets: [{id: A, unit: 2}]", "cabinets[1].unit"),                                         // the meter
        ("cabinets: [{id: A, unit: 248}]", "cabinets[1].unit"),                                       // out of range
        ("cabinets: [{transport: tcp}]", "cabinets[1].id"),                                           // id required
        ("cabinets: [{id: \"A/1\"}]", "cabinets[1].id"),                                              // not writable as ID/slot
        ("cabinets: [{id: \"7\"}]", "cabinets[1].id"),                                                // reads as a slot number
        ("cabinets: [{id: A, prot: 502}]", "cabinets[1].prot"),                                       // misspelt key
        ("cabinets: [{id: A, port: 70000}]", "cabinets[1].port"),
        ("cabinets: []", "cabinets"),
        ("cabinets: {id: A}", "cabinets"),
        ("cabinets: [{id: A, transport: rtu, device: /dev/x, baud: 9600}, {id: B, transport: rtu, device: /dev/x, unit: 3}]", "cabinets[2]"),
        ("cabinets: [{id: A, response_timeout: 0.5}, {id: B, unit: 3, response_timeout: 0.2}]", "cabinets[2]"),
        ("cabinets: [{id: A}, {id: B, port: 503, meter: true}]", "cabinets"),                         // two meters
    ])
    func eachProblemNamesItsKey(yaml: String, key: String) {
        let errors = Self.problems(yaml)
        #expect(errors.contains { $0.key == key }, "\(errors)")
    }

    @Test func busSettingsMayDifferOnOtherBusesAndPerCabinetKeysMayDifferOnOne() throws {
        let c = try Self.parse("""
        cabinets:
          - {id: A, transport: rtu, device: /dev/ttyS1, baud: 9600, fast_interval: 0.2, unit: 1}
          - {id: B, transport: rtu, device: /dev/ttyS1, baud: 9600, fast_interval: 1, unit: 3}
          - {id: C, transport: rtu, device: /dev/ttyS2, baud: 19200}
        """)
        #expect(c.acquisitions.map(\.fastInterval) == [0.2, 1, 0.5])
    }

    // MARK: Numbering

    static func station(_ counts: [Int?]) -> StationAcquisition {
        var confs: [AcquisitionConfiguration] = []
        for (i, n) in counts.enumerated() {
            var a = AcquisitionConfiguration(transport: .tcp(host: "127.0.0.1", port: 1))
            a.cabinetID = ["A", "B", "C"][i]
            a.unit = i == 0 ? 1 : UInt8(i + 2)
            a.expectedSlotCount = n
            confs.append(a)
        }
        return StationAcquisition(configurations: confs)
    }

    @Test func stationWideNumbersFollowTheConfiguredOrder() {
        let st = Self.station([16, 8, 12])
        #expect(st.locate(1)! == (0, 1))
        #expect(st.locate(16)! == (0, 16))
        #expect(st.locate(17)! == (1, 1))       // the second cabinet's slot 1
        #expect(st.locate(24)! == (1, 8))
        #expect(st.locate(25)! == (2, 1))
        #expect(st.locate(36)! == (2, 12))
        #expect(st.locate(37) == nil && st.locate(0) == nil && st.locate(-1) == nil)
        #expect(st.stationSlot(cabinet: 1, local: 3) == 19)
        #expect(st.stationSlot(cabinet: 1, local: 9) == nil)
        #expect(st.resolve("19") == 19 && st.resolve("B/3") == 19 && st.resolve("C/12") == 36 && st.resolve("A/1") == 1)
        #expect(st.resolve("B/9") == nil && st.resolve("D/1") == nil && st.resolve("37") == nil && st.resolve("B/") == nil)
        #expect(st.cabinets[0].bus === st.cabinets[1].bus)   // one address: one owner
    }

    @Test func aCabinetWhoseSlotCountIsUnknownNumbersNothingAfterIt() {
        let st = Self.station([16, nil, 4])
        #expect(st.locate(16)! == (0, 16))
        #expect(st.locate(17) == nil)           // B's span unknown: B and C have no numbers yet (fail closed)
        #expect(st.resolve("C/1") == nil)
        let snap = st.snapshot
        #expect(snap.cabinets.map(\.id) == ["A", "B", "C"])
        #expect(snap.cabinets.map(\.slotCount) == [16, 0, 0])
        // A's slots exist (stale: never read) so that numbers stay indexable; none is usable.
        #expect(snap.slots.count == 16 && snap.slots.allSatisfy { $0.stale && $0.cabinet == "A" })
        #expect(snap.slot(16)?.cabinetSlot == 16)
    }

    @Test func changesAreRenumberedAndAStoredSingleCabinetStateSeedsTheFirstCabinet() throws {
        #expect(StationChange.doorOpened(slot: 2, wasUnlocked: true).renumbered(18) == .doorOpened(slot: 18, wasUnlocked: true))
        #expect(StationChange.cabinetRebooted(oldUptime: 5, newUptime: 1).renumbered(3) == .cabinetRebooted(oldUptime: 5, newUptime: 1))
        // A state stored by the single-cabinet version (no `cabinets` anywhere) still decodes.
        let old = #"{"snapshot":{"cabinet":{"mapVersion":1,"firmwareVersion":"1.0.0","slotCount":4,"serial":"S","uptimeSeconds":9,"heartbeat":1,"flags":1,"temperature":20,"lastCommandSeq":0,"lastCommandResult":0,"watchdogSeconds":0,"safeMode":false},"slots":[{"number":1,"state":3,"fault":0,"doorOpenCount":0,"insertCount":0,"changeCounter":0,"stale":false}],"cabinetStale":false,"lastUpdateMillis":1},"quarantine":{},"openDoors":{}}"#
        let seed = try JSONDecoder().decode(PersistedStation.self, from: Data(old.utf8))
        #expect(seed.cabinets == nil && seed.snapshot.cabinets.isEmpty)
        let st = StationAcquisition(configurations: Self.station([nil, 4]).cabinets.map(\.configuration), seed: seed)
        #expect(st.locate(5)! == (1, 1))        // A's count (4) came from the stored state
    }
}
