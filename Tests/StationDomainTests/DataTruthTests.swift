import Foundation
import Testing
@testable import StationDomain

/// Issue 9 item 7: probes keep their positions (0x8000 absent, 0 a temperature), fault codes keep their raw
/// value, and decoded values carry no binary noise.
@Suite struct DataTruthTests {
    func cellBlock(probes: [UInt16]) -> [UInt16] {
        var regs = [UInt16](repeating: 0, count: 32)
        regs[0] = 13
        for i in 0 ..< 13 { regs[1 + i] = 4000 }
        for (k, p) in probes.enumerated() { regs[25 + k] = p }
        return regs
    }

    @Test func zeroIsATemperatureAndAbsentProbesKeepTheirPlace() throws {
        let c = try CabinetDecoder.cells(Registers(cellBlock(probes: [0, 0x8000, 215, 0x8000, UInt16(bitPattern: -5), 0x8000])))
        #expect(c.probeTemperatures == [0.0, nil, 21.5, nil, -0.5, nil])
        let none = try CabinetDecoder.cells(Registers(cellBlock(probes: [0x8000, 0x8000, 0x8000, 0x8000, 0x8000, 0x8000])))
        #expect(none.probeTemperatures == [nil, nil, nil, nil, nil, nil])
        // JSON: null where a probe is absent, never a shift.
        let json = String(decoding: try JSONEncoder().encode(c), as: UTF8.self)
        #expect(json.contains(#""probeTemperatures":[0,null,21.5,null,-0.5,null]"#), "\(json)")
    }

    @Test func anImplausibleProbeDropsTheBlock() {
        #expect(throws: DecodeError.self) { try CabinetDecoder.cells(Registers(cellBlock(probes: [250, 1501, 0x8000, 0x8000, 0x8000, 0x8000]))) }
        #expect(throws: DecodeError.self) { try CabinetDecoder.cells(Registers(cellBlock(probes: [UInt16(bitPattern: -401)]))) }
    }

    @Test func unknownFaultCodeKeepsItsRawValue() throws {
        let s = Fixture.status(1, Fixture.slot(fault: 0x1234))
        #expect(s.fault.rawValue == 0x1234)
        #expect(s.faulted)
        let json = String(decoding: try JSONEncoder().encode(s), as: UTF8.self)
        #expect(json.contains(#""fault":4660"#), "\(json)")
        #expect(Fixture.status(1, Fixture.slot(fault: 3)).fault == .chargerFault)
    }

    /// Every register value × every resolution: the decoded double is the one nearest the register's decimal
    /// value, so it prints as that decimal (594 → "59.4", never "59.400000000000006").
    @Test func decodedValuesPrintAsTheRegistersDecimals() throws {
        for raw in [UInt16(0), 1, 7, 29, 594, 987, 999, 1000] {
            let s = Fixture.status(1, Fixture.slot(soc: raw, soh: raw, voltage: raw &* 7, current: Int16(raw) - 500,
                                                   tMax: Int16(raw) - 400, tMin: -Int16(raw % 400), full: 60000, remaining: raw &* 3,
                                                   vMax: 4000 + raw, vMin: 3000 + raw))
            let b = try #require(s.bms)
            #expect("\(b.socPercent)" == decimal(Int(raw), 1))
            #expect("\(b.sohPercent)" == decimal(Int(raw), 1))
            #expect("\(b.packVoltage)" == decimal(Int(raw &* 7), 2))
            #expect("\(b.packCurrent)" == decimal(Int(raw) - 500, 2))
            #expect("\(b.tempMax)" == decimal(Int(raw) - 400, 1))
            #expect("\(b.tempMin)" == decimal(-Int(raw % 400), 1))
            #expect("\(b.remainingCapacityAh)" == decimal(Int(raw &* 3), 2))
            #expect("\(b.cellVMax)" == decimal(4000 + Int(raw), 3))
            let json = String(decoding: try JSONEncoder().encode(b), as: UTF8.self)
            #expect(!json.contains("0000000") && !json.contains("9999999"), "\(json)")
        }
        let s = Fixture.status(1, Fixture.slot(soc: 594))
        #expect(String(decoding: try JSONEncoder().encode(s), as: UTF8.self).contains(#""socPercent":59.4,"#))
    }

    /// `n` × 10^-digits written the way Swift prints the nearest double: "59.4", "4.0", "-0.5".
    func decimal(_ n: Int, _ digits: Int) -> String {
        let sign = n < 0 ? "-" : ""
        let a = abs(n)
        let p = Int(pow(10, Double(digits)))
        var frac = String(a % p)
        frac = String(repeating: "0", count: digits - frac.count) + frac
        while frac.count > 1, frac.hasSuffix("0") { frac.removeLast() }
        return "\(sign)\(a / p).\(frac)"
    }
}
