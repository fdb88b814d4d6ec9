import ABSProtocol
import Foundation
import StationDomain
import Testing

/// The typed contract (ABSProtocol/Contract) against abs-mqtt.md and against the bytes the station sent before the
/// payloads were typed: each payload's golden bytes, and the same content built the old way (a dictionary written by
/// JSONSerialization with sorted keys) as an oracle.
@Suite struct ContractPayloadTests {
    let now = Date(timeIntervalSince1970: 1_795_000_000.25)   // 2026-11-18T11:06:40.250Z

    func text(_ v: some Encodable) -> String { String(decoding: ContractJSON.encode(v), as: UTF8.self) }
    func old(_ o: [String: Any]) throws -> String {
        String(decoding: try JSONSerialization.data(withJSONObject: o, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }

    // MARK: abs-mqtt.md

    static func spec() throws -> String {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        for path in [repo.appendingPathComponent("../shared/specs/abs-mqtt.md").path, "/work/shared/specs/abs-mqtt.md"]
        where FileManager.default.fileExists(atPath: path) {
            return try String(contentsOfFile: path, encoding: .utf8)
        }
        throw CocoaError(.fileNoSuchFile)
    }

    /// Every `type` in the first column of the "### Events" table.
    static func specEventTypes() throws -> Set<String> {
        let text = try spec()
        let start = try #require(text.range(of: "### Events"))
        var types: Set<String> = []
        for line in text[start.upperBound...].split(separator: "\n") {
            if line.hasPrefix("#") { break }
            guard line.hasPrefix("| `") else { continue }
            let first = line.dropFirst(1).prefix { $0 != "|" }
            for (i, part) in first.split(separator: "`", omittingEmptySubsequences: false).enumerated() where i % 2 == 1 {
                types.insert(String(part))
            }
        }
        return types
    }

    @Test func eventTypesAreTheContractsTable() throws {
        let spec = try Self.specEventTypes()
        #expect(spec.count >= 20)   // the table was read
        let ours = Set(EventType.allCases.filter { !EventType.stationAdditions.contains($0) }.map(\.rawValue))
        #expect(ours == spec, "in the code only: \(ours.subtracting(spec).sorted()); in abs-mqtt.md only: \(spec.subtracting(ours).sorted())")
        #expect(Set(EventType.stationAdditions.map(\.rawValue)).isDisjoint(with: spec))
    }

    @Test func replyCodesAreTheContractsList() throws {
        let text = try Self.spec()
        let start = try #require(text.range(of: "Reason codes for refusals:"))
        let paragraph = String(text[start.upperBound...]).components(separatedBy: "\n\n").first ?? ""
        let codes = Set(paragraph.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) })
        #expect(codes.count == 16)
        // need_snapshot comes from entitlements.md.
        #expect(Set(ReplyCode.allCases.map(\.rawValue)) == codes.union(["need_snapshot"]))
    }

    // MARK: Events

    static let bms = BMSReading(batteryID: "BAT-0042", socPercent: 87.349, sohPercent: 96.04, packVoltage: 53.1234,
                                packCurrent: -1.005, tempMax: 31.26, tempMin: 28.04, cycleCount: 412, fullCapacityAh: 40.126,
                                remainingCapacityAh: 35.0049, protection: [], warning: BMSFlags(rawValue: 1),
                                cellVMax: 3.3456, cellVMin: 3.3011, family: .init(register: 1))

    func round(_ v: Double, _ d: Int = 1) -> Double { ContractJSON.round(v, d) }

    /// Each event type: golden bytes, and the old dictionary of the same event.
    @Test func eventDataBytes() throws {
        let b = Self.bms
        let cases: [(EventPayload, String, [String: Any])] = [
            (.gatewayStarted(version: "1.4.0", configDigest: "ab12", previousShutdownClean: false),
             #"{"config_digest":"ab12","previous_shutdown_clean":false,"version":"1.4.0"}"#,
             ["version": "1.4.0", "config_digest": "ab12", "previous_shutdown_clean": false]),
            (.cabinetRebooted(oldUptimeS: 86400, newUptimeS: 3),
             #"{"new_uptime_s":3,"old_uptime_s":86400}"#, ["old_uptime_s": 86400, "new_uptime_s": 3]),
            (.cabinetAlarm(raised: ["tamper"], cleared: [], flags: ["mains_ok", "tamper"]),
             #"{"cleared":[],"flags":["mains_ok","tamper"],"raised":["tamper"]}"#,
             ["raised": ["tamper"], "cleared": [String](), "flags": ["mains_ok", "tamper"]]),
            (.slotDoorOpened(slot: 17, authorised: false), #"{"authorised":false,"slot":17}"#, ["slot": 17, "authorised": false]),
            (.slotDoorClosed(slot: 3, authorised: true), #"{"authorised":true,"slot":3}"#, ["slot": 3, "authorised": true]),
            (.slotFault(slot: 2, faultCode: 3, fault: "lock_jammed"), #"{"fault":"lock_jammed","fault_code":3,"slot":2}"#,
             ["slot": 2, "fault_code": 3, "fault": "lock_jammed"]),
            (.slotRecovered(slot: 2, faultCode: 3, fault: "lock_jammed"), #"{"fault":"lock_jammed","fault_code":3,"slot":2}"#,
             ["slot": 2, "fault_code": 3, "fault": "lock_jammed"]),
            (.batteryInserted(slot: 4, battery: b), #"{"battery_id":"BAT-0042","family":"\#(b.family.name)","slot":4,"soc":87.3,"soh":96}"#,
             ["slot": 4, "battery_id": "BAT-0042", "soc": round(b.socPercent), "soh": round(b.sohPercent), "family": b.family.name]),
            (.batteryRemoved(slot: 4, battery: nil), #"{"battery_id":null,"family":null,"slot":4,"soc":null,"soh":null}"#,
             ["slot": 4, "battery_id": NSNull(), "soc": NSNull(), "soh": NSNull(), "family": NSNull()]),
            (.batteryCharged(slot: 5, batteryID: "BAT-1", soc: 100.0, minutesOnCharge: 93.26),
             #"{"battery_id":"BAT-1","minutes_on_charge":93.3,"slot":5,"soc":100}"#,
             ["slot": 5, "battery_id": "BAT-1", "soc": 100.0, "minutes_on_charge": 93.3]),
            (.batteryCharged(slot: 5, batteryID: "BAT-1", soc: 99.96, minutesOnCharge: nil),
             #"{"battery_id":"BAT-1","minutes_on_charge":null,"slot":5,"soc":100}"#,
             ["slot": 5, "battery_id": "BAT-1", "soc": round(99.96), "minutes_on_charge": NSNull()]),
            (.batteryAlarm(slot: 6, batteryID: "B", protectionRaised: ["cell_overvoltage"], warningRaised: []),
             #"{"battery_id":"B","protection_raised":["cell_overvoltage"],"slot":6,"warning_raised":[]}"#,
             ["slot": 6, "battery_id": "B", "protection_raised": ["cell_overvoltage"], "warning_raised": [String]()]),
            (.batteryQuarantined(slot: 7, batteryID: "B", reasons: ["soh_below_threshold", "unknown_family"]),
             #"{"battery_id":"B","reason":"soh_below_threshold","reasons":["soh_below_threshold","unknown_family"],"slot":7}"#,
             ["slot": 7, "battery_id": "B", "reason": "soh_below_threshold", "reasons": ["soh_below_threshold", "unknown_family"]]),
            (.batteryReleasedFromQuarantine(slot: 7, batteryID: "B", reasons: []),
             #"{"battery_id":"B","reason":"","reasons":[],"slot":7}"#,
             ["slot": 7, "battery_id": "B", "reason": "", "reasons": [String]()]),
            (.swapAccepted(swapID: "s-1", requestID: "r-1", customerID: "c-1", planInstanceID: "pi-1", kind: "swap",
                           returnSlot: 3, issueSlot: nil, channel: nil),
             #"{"customer_id":"c-1","issue_slot":null,"kind":"swap","plan_instance_id":"pi-1","request_id":"r-1","return_slot":3,"swap_id":"s-1"}"#,
             ["swap_id": "s-1", "request_id": "r-1", "customer_id": "c-1", "plan_instance_id": "pi-1", "kind": "swap",
              "return_slot": 3, "issue_slot": NSNull()]),
            (.swapAccepted(swapID: "s-1", requestID: "r-1", customerID: "c-1", planInstanceID: "pi-1", kind: "first",
                           returnSlot: nil, issueSlot: 9, channel: "app"),
             #"{"channel":"app","customer_id":"c-1","issue_slot":9,"kind":"first","plan_instance_id":"pi-1","request_id":"r-1","return_slot":null,"swap_id":"s-1"}"#,
             ["swap_id": "s-1", "request_id": "r-1", "customer_id": "c-1", "plan_instance_id": "pi-1", "kind": "first",
              "return_slot": NSNull(), "issue_slot": 9, "channel": "app"]),
            (.swapRejected(requestID: "r-2", customerID: "c-2", reason: .quotaExhausted, message: "60 of 60 swaps used"),
             #"{"customer_id":"c-2","message":"60 of 60 swaps used","reason":"quota_exhausted","request_id":"r-2"}"#,
             ["request_id": "r-2", "customer_id": "c-2", "reason": "quota_exhausted", "message": "60 of 60 swaps used"]),
            (.swapCompleted(swapID: "s-1", customerID: "c-1", planInstanceID: "pi-1",
                            batteryIn: SwapBatteryData(id: "BAT-IN", soc: 12.345, slot: 3),
                            batteryOut: SwapBatteryData(id: "BAT-OUT", soc: 99.99, slot: 9), energyKWh: 1.234, recordedOffline: false),
             #"{"battery_in":{"id":"BAT-IN","slot":3,"soc":12.3},"battery_out":{"id":"BAT-OUT","slot":9,"soc":100},"customer_id":"c-1","energy_kwh":1.234,"plan_instance_id":"pi-1","recorded_offline":false,"swap_id":"s-1"}"#,
             ["swap_id": "s-1", "customer_id": "c-1", "plan_instance_id": "pi-1",
              "battery_in": ["id": "BAT-IN", "soc": round(12.345), "slot": 3], "battery_out": ["id": "BAT-OUT", "soc": round(99.99), "slot": 9],
              "energy_kwh": 1.234, "recorded_offline": false]),
            (.swapCompleted(swapID: "s-1", customerID: "c-1", planInstanceID: "pi-1", batteryIn: nil,
                            batteryOut: SwapBatteryData(id: "BAT-OUT", soc: 80, slot: 9), energyKWh: 0, recordedOffline: true),
             #"{"battery_in":null,"battery_out":{"id":"BAT-OUT","slot":9,"soc":80},"customer_id":"c-1","energy_kwh":0,"plan_instance_id":"pi-1","recorded_offline":true,"swap_id":"s-1"}"#,
             ["swap_id": "s-1", "customer_id": "c-1", "plan_instance_id": "pi-1", "battery_in": NSNull(),
              "battery_out": ["id": "BAT-OUT", "soc": 80.0, "slot": 9], "energy_kwh": 0.0, "recorded_offline": true]),
            (.swapAborted(swapID: "s-1", stage: "awaiting_return", reason: "return timeout"),
             #"{"reason":"return timeout","stage":"awaiting_return","swap_id":"s-1"}"#,
             ["swap_id": "s-1", "stage": "awaiting_return", "reason": "return timeout"]),
            (.swapReturned(swapID: "s-1", customerID: "c-1", planInstanceID: "pi-1", batteryIn: SwapBatteryData(id: "B", soc: 20, slot: 3),
                           reason: "restricted", stage: "awaiting_pickup"),
             #"{"battery_in":{"id":"B","slot":3,"soc":20},"customer_id":"c-1","plan_instance_id":"pi-1","reason":"restricted","stage":"awaiting_pickup","swap_id":"s-1"}"#,
             ["swap_id": "s-1", "customer_id": "c-1", "plan_instance_id": "pi-1", "battery_in": ["id": "B", "soc": 20.0, "slot": 3],
              "reason": "restricted", "stage": "awaiting_pickup"]),
            (.maintenanceUnlock(slot: 2, operatorID: "technician:ama", reason: "door check", requestID: "local-1"),
             #"{"operator_id":"technician:ama","reason":"door check","request_id":"local-1","slot":2}"#,
             ["slot": 2, "operator_id": "technician:ama", "reason": "door check", "request_id": "local-1"]),
            (.entitlementsApplied(kind: "snapshot", version: 7, count: 100_000),
             #"{"count":100000,"kind":"snapshot","version":7}"#, ["kind": "snapshot", "version": 7, "count": 100_000]),
            (.entitlementsApplied(kind: "snapshot", version: 8, count: 5, snapshotID: "snap-8", parts: 20),
             #"{"count":5,"kind":"snapshot","parts":20,"snapshot_id":"snap-8","version":8}"#,
             ["kind": "snapshot", "version": 8, "count": 5, "snapshot_id": "snap-8", "parts": 20]),
            (.gatewayAlarm(kind: "odoo_credentials", message: "401", active: true),
             #"{"active":true,"kind":"odoo_credentials","message":"401"}"#, ["kind": "odoo_credentials", "message": "401", "active": true]),
        ]
        var covered: Set<EventType> = []
        for (payload, golden, dict) in cases {
            covered.insert(payload.type)
            let bytes = text(ContractEvent(payload))
            #expect(bytes == golden, "\(payload.type.rawValue)")
            #expect(bytes == (try old(dict)), "\(payload.type.rawValue)")
        }
        #expect(covered == Set(EventType.allCases), "event types without a golden: \(Set(EventType.allCases).subtracting(covered))")
    }

    @Test func eventCabinetAndUntrustedClockAreAddedToTheData() throws {
        let e = ContractEvent(.slotDoorOpened(slot: 17, authorised: true), cabinet: "B", clockTrusted: false)
        #expect(text(e) == #"{"authorised":true,"cabinet":"B","clock_trusted":false,"slot":17}"#)
        #expect(e.type == "slot.door_opened")
        #expect(String(decoding: e.data, as: UTF8.self) == text(e))
    }

    @Test func eventEnvelopeAroundStoredData() throws {
        let id = UUID(uuidString: "0B7F1C2D-3E4F-4A5B-8C6D-7E8F9A0B1C2D")!
        let stored = Array(#"{"slot":4,"note":"a \"quoted\" \\ value"}"#.utf8)   // kept byte for byte, not re-sorted
        let env = EventEnvelope(eventID: id, seq: 1042, type: "swap.completed", stationID: "TG-LOME-0007", ts: now, data: stored)
        let golden = #"{"data":{"slot":4,"note":"a \"quoted\" \\ value"},"event_id":"0b7f1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d","seq":1042,"station_id":"TG-LOME-0007","ts":"2026-11-18T11:06:40.250Z","type":"swap.completed","v":1}"#
        #expect(String(decoding: env.bytes, as: UTF8.self) == golden)
        #expect(text(env) == golden)   // the Encodable path writes the same
        // Empty stored data: {}.
        let empty = EventEnvelope(eventID: id, seq: 1, type: "gateway.started", stationID: "S", ts: now, data: [])
        #expect(String(decoding: empty.bytes, as: UTF8.self).hasPrefix(#"{"data":{},"event_id""#))
    }

    // MARK: Replies

    @Test func replyDataBytes() throws {
        #expect(text(PingReplyData(version: "1.4.0", cabinetOnline: true, swapsInProgress: 0)) ==
                #"{"cabinet_online":true,"swaps_in_progress":0,"version":"1.4.0"}"#)
        #expect(text(SlotReplyData(slot: 3)) == #"{"slot":3}"#)
        #expect(text(SlotReplyData(slot: 19, cabinet: "B", cabinetSlot: 3, inService: false)) ==
                #"{"cabinet":"B","cabinet_slot":3,"in_service":false,"slot":19}"#)
        #expect(text(EntitlementsReplyData(version: 7, count: 2)) == #"{"count":2,"version":7}"#)
        #expect(text(EntitlementsReplyData(currentVersion: -1)) == #"{"current_version":-1}"#)
        #expect(text(EntitlementsReplyData(version: 8, snapshotID: "snap-8", part: 2, parts: 20, partsMissing: 18, firstMissing: [1, 3])) ==
                #"{"first_missing":[1,3],"part":2,"parts":20,"parts_missing":18,"snapshot_id":"snap-8","version":8}"#)
        let r = Reply(requestID: "r-1", ok: true, data: SlotReplyData(slot: 3), ts: now)
        #expect(String(decoding: r.bytes, as: UTF8.self) ==
                #"{"code":null,"data":{"slot":3},"message":null,"ok":true,"request_id":"r-1","ts":"2026-11-18T11:06:40.250Z","v":1}"#)
    }

    // MARK: Status, inventory, telemetry

    @Test func statusBytes() throws {
        let s = StatusMessage(online: true, stationID: "TG-LOME-0007", version: "1.4.0", cabinet: "online",
                              cabinets: ["A": "online", "B": "unreachable"], session: 12, clock: "unsynced", ts: now)
        let golden = #"{"cabinet":"online","cabinets":{"A":"online","B":"unreachable"},"clock":"unsynced","online":true,"session":12,"station_id":"TG-LOME-0007","ts":"2026-11-18T11:06:40.250Z","v":1,"version":"1.4.0"}"#
        #expect(String(decoding: s.bytes, as: UTF8.self) == golden)
        #expect(String(decoding: s.bytes, as: UTF8.self) == (try old([
            "v": 1, "station_id": "TG-LOME-0007", "online": true, "ts": "2026-11-18T11:06:40.250Z", "version": "1.4.0",
            "session": 12, "clock": "unsynced", "cabinet": "online", "cabinets": ["A": "online", "B": "unreachable"]])))
        // The will: nothing but online, station, version, session and time.
        #expect(text(StatusMessage(online: false, stationID: "S", version: "1", session: 3, ts: now)) ==
                #"{"online":false,"session":3,"station_id":"S","ts":"2026-11-18T11:06:40.250Z","v":1,"version":"1"}"#)
    }

    @Test func inventoryBytes() throws {
        var a = Inventory(); a.ready = 2; a.charging = 1; a.readyByFamily = ["LFP48": 2]
        var b = Inventory(); b.empty = 3; b.faulty = 1
        var inv = Inventory(); inv.ready = 2; inv.charging = 1; inv.empty = 3; inv.faulty = 1; inv.readyByFamily = ["LFP48": 2]
        inv.byCabinet = ["B": b, "A": a]
        let m = InventoryMessage(inv, stationID: "S", cabinetOrder: ["B", "A"], ts: now)
        func counts(_ i: Inventory) -> [String: Any] {
            ["ready": i.ready, "charging": i.charging, "empty": i.empty, "faulty": i.faulty, "out_of_service": i.outOfService,
             "unknown": i.unknown, "ready_by_family": i.readyByFamily]
        }
        var o = counts(inv)
        o["v"] = 1; o["station_id"] = "S"; o["ts"] = "2026-11-18T11:06:40.250Z"
        o["cabinets"] = ["B", "A"].map { id -> [String: Any] in var c = counts(inv.byCabinet[id]!); c["cabinet"] = id; return c }
        #expect(String(decoding: m.bytes, as: UTF8.self) == (try old(o)))
        #expect(String(decoding: m.bytes, as: UTF8.self).hasPrefix(
            #"{"cabinets":[{"cabinet":"B","charging":0,"empty":3,"faulty":1,"out_of_service":0,"ready":0,"ready_by_family":{},"unknown":0},"#))
        // One cabinet the old way: no `cabinets`.
        var single = Inventory(); single.ready = 1
        #expect(text(InventoryMessage(single, stationID: "S", ts: now)) ==
                #"{"charging":0,"empty":0,"faulty":0,"out_of_service":0,"ready":1,"ready_by_family":{},"station_id":"S","ts":"2026-11-18T11:06:40.250Z","unknown":0,"v":1}"#)
    }

    /// The telemetry body of a two-cabinet station with a meter, a slot with a battery and quarantine, an empty slot
    /// and a stale one, against the old dictionary builder (Payloads.telemetryBody before the contract was typed).
    @Test func telemetryBodyBytes() throws {
        let info = CabinetInfo(firmwareVersion: "2.1.0", slotCount: 2, serial: "CAB-1", uptimeSeconds: 3600,
                               flags: [.mainsOK, .tamper], temperature: 31.449, watchdogSeconds: 30)
        var s1 = SlotStatus(number: 1, state: [.batteryPresent, .doorClosed, .locked, .charging, .bmsLinkOK], bms: Self.bms,
                            doorOpenCount: 4, insertCount: 2)
        s1.cabinet = "A"; s1.cabinetSlot = 1
        var s2 = SlotStatus(number: 2, state: [.doorClosed, .locked], bmsError: "no answer", stale: true)
        s2.cabinet = "A"; s2.cabinetSlot = 2
        var snap = StationSnapshot(cabinet: info, slots: [s1, s2],
                                   meter: MeterReading(importEnergyKWh: 1234.5678, voltage: 230.04, current: 5.126, activePowerW: 1180.06,
                                                       frequencyHz: 50.014), cabinetStale: false)
        snap.cabinets = [CabinetState(id: "A", unit: 1, info: info, stale: false, firstSlot: 1, slotCount: 2),
                         CabinetState(id: "B", unit: 3, info: nil, stale: true, firstSlot: 3, slotCount: 0)]
        let quarantined: [Int: [QuarantineReason]] = [1: [.sohBelowThreshold]]
        let body = TelemetryBody(snap, quarantined: quarantined)
        #expect(text(body) == (try old(Self.oldTelemetryBody(snap, quarantined: quarantined))))
        // No meter: null; one cabinet the old way: no `cabinets`.
        let plain = TelemetryBody(StationSnapshot(cabinet: info, slots: [], meter: nil, cabinetStale: true), quarantined: [:])
        #expect(text(plain) == #"{"cabinet":{"firmware":"2.1.0","flags":["mains_ok","tamper"],"safe_mode":false,"serial":"CAB-1","slot_count":2,"temperature_c":31.4,"uptime_s":3600,"watchdog_s":30},"cabinet_stale":true,"meter":null,"slots":[]}"#)
    }

    @Test func telemetryEnvelope() {
        let m = TelemetryMessage(kind: .changes, tseq: 7, session: 2, stationID: "S", ts: now, body: ["slots": [["slot": 3, "bms": ["soc": 55.5]]]])
        #expect(m.value.bytes == Array(#"{"kind":"changes","session":2,"slots":[{"bms":{"soc":55.5},"slot":3}],"station_id":"S","ts":"2026-11-18T11:06:40.250Z","tseq":7,"v":1}"#.utf8))
    }

    /// Payloads.telemetryBody as it was (dictionaries), the oracle for the typed body.
    static func oldTelemetryBody(_ snap: StationSnapshot, quarantined: [Int: [QuarantineReason]]) -> [String: Any] {
        func r(_ v: Double, _ d: Int = 1) -> Double { ContractJSON.round(v, d) }
        func cabinetBlock(_ c: CabinetInfo) -> [String: Any] {
            ["serial": c.serial, "firmware": c.firmwareVersion, "slot_count": c.slotCount, "uptime_s": Int(c.uptimeSeconds),
             "flags": c.flags.names, "temperature_c": r(c.temperature), "safe_mode": c.safeMode, "watchdog_s": Int(c.watchdogSeconds)]
        }
        var o: [String: Any] = ["cabinet_stale": snap.cabinetStale]
        if let c = snap.cabinet { o["cabinet"] = cabinetBlock(c) }
        if !snap.cabinets.isEmpty {
            o["cabinets"] = snap.cabinets.map { cab -> [String: Any] in
                var b: [String: Any] = cab.info.map(cabinetBlock) ?? [:]
                b["cabinet"] = cab.id; b["unit"] = cab.unit; b["stale"] = cab.stale
                b["first_slot"] = cab.firstSlot; b["slots"] = cab.slotCount
                return b
            }
        }
        if let m = snap.meter {
            o["meter"] = ["import_energy_kwh": r(m.importEnergyKWh, 2), "voltage_v": r(m.voltage), "current_a": r(m.current, 2),
                          "active_power_w": r(m.activePowerW), "frequency_hz": r(m.frequencyHz, 2)]
        } else {
            o["meter"] = NSNull()
        }
        o["slots"] = snap.slots.map { s -> [String: Any] in
            var d: [String: Any] = ["slot": s.number, "state": s.state.description, "battery_present": s.batteryPresent,
                                    "door_closed": s.doorClosed, "locked": s.locked, "charging": s.charging,
                                    "charge_complete": s.chargeComplete, "in_service": s.inService, "bms_link_ok": s.bmsLinkOK,
                                    "fault_code": Int(s.fault.rawValue), "stale": s.stale,
                                    "door_open_count": Int(s.doorOpenCount), "insert_count": Int(s.insertCount)]
            if let c = s.cabinet { d["cabinet"] = c }
            if let l = s.cabinetSlot { d["cabinet_slot"] = l }
            if let q = quarantined[s.number] { d["quarantine"] = q.map(\.rawValue) }
            if let e = s.bmsError { d["bms_error"] = e }
            if let b = s.bms {
                d["bms"] = ["battery_id": b.batteryID, "family": b.family.name, "soc": r(b.socPercent), "soh": r(b.sohPercent),
                            "pack_voltage_v": r(b.packVoltage, 2), "pack_current_a": r(b.packCurrent, 2), "temp_max_c": r(b.tempMax),
                            "temp_min_c": r(b.tempMin), "cycle_count": Int(b.cycleCount), "full_capacity_ah": r(b.fullCapacityAh, 2),
                            "remaining_capacity_ah": r(b.remainingCapacityAh, 2), "protection": b.protection.names,
                            "warning": b.warning.names, "cell_v_max": r(b.cellVMax, 3), "cell_v_min": r(b.cellVMin, 3)]
            } else {
                d["bms"] = NSNull()
            }
            return d
        }
        return o
    }
}
