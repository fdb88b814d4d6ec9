import Testing
@testable import StationDomain

/// Deadband edges of telemetry by exception: compared with the last REPORTED value.
@Suite struct TelemetryDiffTests {
    func slot(soc: Double, v: Double = 53.1, cell: Double = 3.300, state: String = "charging", bms: Bool = true,
              quarantine: [String]? = nil) -> [String: TelemetryField] {
        var o: [String: any Sendable] = ["slot": 3, "state": state, "door_open_count": 4]
        if bms {
            o["bms"] = ["soc": soc, "pack_voltage_v": v, "cell_v_max": cell, "battery_id": "B1", "protection": [String]()] as [String: any Sendable]
        } else {
            o["bms"] = Optional<Int>.none as any Sendable
        }
        if let quarantine { o["quarantine"] = quarantine }
        return TelemetryDiff.flatten(o)
    }

    func baseline(_ fields: [String: TelemetryField]) -> TelemetryDiff {
        var d = TelemetryDiff()
        d.baseline("slot:3", fields)
        return d
    }

    @Test func exactlyAtTheDeadbandIsReported() {
        var d = baseline(slot(soc: 50))
        #expect(d.changes("slot:3", slot(soc: 51)) == ["bms.soc"])
        var v = baseline(slot(soc: 50, v: 53.1))
        #expect(v.changes("slot:3", slot(soc: 50, v: 53.6)) == ["bms.pack_voltage_v"])   // 0.5 V, float noise tolerated
        var c = baseline(slot(soc: 50, cell: 3.300))
        #expect(c.changes("slot:3", slot(soc: 50, cell: 3.320)) == ["bms.cell_v_max"])   // 20 mV
        #expect(c.changes("slot:3", slot(soc: 50, cell: 3.300)) == ["bms.cell_v_max"])   // and back down by 20 mV
    }

    @Test func justBelowTheDeadbandIsNotReported() {
        var d = baseline(slot(soc: 50))
        #expect(d.changes("slot:3", slot(soc: 50.9)).isEmpty)
        #expect(d.changes("slot:3", slot(soc: 49.1)).isEmpty)
        #expect(d.changes("slot:3", slot(soc: 50, v: 53.59)).isEmpty)
        #expect(d.changes("slot:3", slot(soc: 50, cell: 3.319)).isEmpty)
    }

    @Test func slowDriftIsReportedOnceItAccumulates() {
        var d = baseline(slot(soc: 50))
        var reported: [Double] = []
        var soc = 50.0
        for _ in 0 ..< 30 {
            soc += 0.3
            if d.changes("slot:3", slot(soc: soc)) == ["bms.soc"] { reported.append(soc) }
        }
        // 50 -> 51.2 (4 steps, first ≥ 1), then from 51.2 -> 52.4, … : each step below the deadband, the sum not.
        #expect(reported.count == 7)
        #expect(abs(reported[0] - 51.2) < 1e-9)
        #expect(abs(reported[1] - 52.4) < 1e-9)
    }

    @Test func stateFlagsFaultsAndIdsAreAlwaysReported() {
        var d = baseline(slot(soc: 50))
        #expect(d.changes("slot:3", slot(soc: 50, state: "ready")) == ["state"])
        var q = baseline(slot(soc: 50))
        #expect(q.changes("slot:3", slot(soc: 50, quarantine: ["temperature"])) == ["quarantine"])
        // It disappears again: reported (as null by the reporter).
        #expect(q.changes("slot:3", slot(soc: 50)) == ["quarantine"])
        var b = baseline(slot(soc: 50))
        var other = slot(soc: 50)
        other["bms.battery_id"] = .exact("sB2")
        #expect(b.changes("slot:3", other) == ["bms.battery_id"])
    }

    @Test func batteryRemovedReportsOnlyTheParentThenEverythingOnReturn() {
        var d = baseline(slot(soc: 50))
        #expect(d.changes("slot:3", slot(soc: 50, bms: false)) == ["bms"])
        let back = d.changes("slot:3", slot(soc: 50.2))
        #expect(back.first == "bms")
        #expect(Set(back) == ["bms", "bms.soc", "bms.pack_voltage_v", "bms.cell_v_max", "bms.battery_id", "bms.protection"])
    }

    @Test func nothingMovedNothingReported() {
        var d = baseline(slot(soc: 50))
        for _ in 0 ..< 5 { #expect(d.changes("slot:3", slot(soc: 50)).isEmpty) }
        var u = TelemetryDiff()
        u.baseline("cabinet", TelemetryDiff.flatten(["uptime_s": 10.0, "temperature_c": 30.0]))
        #expect(u.changes("cabinet", TelemetryDiff.flatten(["uptime_s": 5000.0, "temperature_c": 30.9])).isEmpty)
    }

    /// The payload sends the cabinet's `uptime_s` and `watchdog_s` as integers (compared exactly): they moved
    /// every second, so every `changes` report carried them and a report went out every interval even when nothing
    /// else had moved. They are full-report-only whatever their type.
    @Test func integerUptimeAndWatchdogAreNeverAChange() {
        var u = TelemetryDiff()
        u.baseline("station", TelemetryDiff.flatten(["cabinet": ["uptime_s": 10, "watchdog_s": 3, "temperature_c": 30.0] as [String: any Sendable]]))
        #expect(u.changes("station", TelemetryDiff.flatten(["cabinet": ["uptime_s": 70, "watchdog_s": 41, "temperature_c": 30.4] as [String: any Sendable]])).isEmpty)
        // Something real moves: only it.
        #expect(u.changes("station", TelemetryDiff.flatten(["cabinet": ["uptime_s": 130, "watchdog_s": 2, "temperature_c": 31.4] as [String: any Sendable]]))
                == ["cabinet.temperature_c"])
    }

    @Test func configuredDeadbandsApply() {
        var bands = TelemetryDeadbands()
        bands.soc = 5
        var d = TelemetryDiff(deadbands: bands)
        d.baseline("slot:3", slot(soc: 50))
        #expect(d.changes("slot:3", slot(soc: 54)).isEmpty)
        #expect(d.changes("slot:3", slot(soc: 55)) == ["bms.soc"])
        bands.soc = 0
        var z = TelemetryDiff(deadbands: bands)
        z.baseline("slot:3", slot(soc: 50))
        #expect(z.changes("slot:3", slot(soc: 50.1)) == ["bms.soc"])
    }
}
