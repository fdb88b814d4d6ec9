// The JSON-RPC 2.0 envelope of the usage-log request, written byte by byte so that field order,
// number formatting (at most 3 fractional digits) and the date format are exactly the contract's.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import StationDomain

public enum OdooRequest {
    /// The controller's route.
    public static let path = "/api/subscription/usage_log"

    /// `{"jsonrpc":"2.0","method":"call","id":rpcID,"params":{…}}` for `record`.
    /// Quantities and `soc_pct` are rounded to 3 decimals (half away from zero); `occurred_at` is
    /// RFC 3339 UTC with milliseconds; `battery_in` is `null` when no battery was returned.
    public static func body(_ record: UsageRecord, rpcID: Int) -> [UInt8] {
        var w = JSONWriter()
        w.raw("{\"jsonrpc\":\"2.0\",\"method\":\"call\",\"id\":\(rpcID),\"params\":{")
        w.key("idempotency_key"); w.string(record.idempotencyKey); w.comma()
        w.key("subscription_ref"); w.string(record.subscriptionRef); w.comma()
        w.key("plan_instance_id"); w.string(record.planInstanceID); w.comma()
        w.key("customer_id"); w.string(record.customerID); w.comma()
        w.key("station_id"); w.string(record.stationID); w.comma()
        w.key("outlet_code"); w.string(record.outletCode); w.comma()
        w.key("occurred_at"); w.string(rfc3339Milliseconds(record.occurredAt)); w.comma()
        w.key("recorded_offline"); w.raw(record.recordedOffline ? "true" : "false"); w.comma()
        w.key("lines"); w.raw("[")
        for (i, line) in record.lines.enumerated() {
            if i > 0 { w.comma() }
            w.raw("{"); w.key("service_id"); w.string(line.serviceID); w.comma()
            w.key("quantity"); w.raw(decimal3(line.quantity)); w.comma()
            w.key("unit"); w.string(line.unit); w.raw("}")
        }
        w.raw("]"); w.comma()
        w.key("swap"); w.raw("{")
        w.key("swap_id"); w.string(record.swapID); w.comma()
        w.key("battery_out"); w.battery(record.batteryOut); w.comma()
        w.key("battery_in")
        if let battery = record.batteryIn { w.battery(battery) } else { w.raw("null") }
        w.raw("}}}")
        return w.bytes
    }

    /// `value` rounded to 3 decimals, without trailing zeros: 1 → `1`, 1.94449 → `1.944`, 2.0004 → `2`.
    /// Not finite → `null` (Odoo then rejects the record, which makes the bad value visible).
    static func decimal3(_ value: Double) -> String {
        guard value.isFinite else { return "null" }
        let scaled = (value * 1000).rounded(.toNearestOrAwayFromZero)
        guard abs(scaled) < 9.0e15 else { return printf3(value) }
        var milli = Int64(scaled)
        if milli == 0 { return "0" }
        let negative = milli < 0
        milli = abs(milli)
        var text = String(milli / 1000)
        var fraction = milli % 1000
        if fraction != 0 {
            var digits = 3
            while fraction % 10 == 0 { fraction /= 10; digits -= 1 }
            let f = String(fraction)
            text += "." + String(repeating: "0", count: digits - f.count) + f
        }
        return negative ? "-" + text : text
    }

    /// `2026-11-22T10:04:31.250Z`: UTC, to the nearest millisecond, always 3 digits.
    static func rfc3339Milliseconds(_ date: Date) -> String {
        let totalMs = Int64((date.timeIntervalSince1970 * 1000).rounded())
        var seconds = totalMs / 1000
        var ms = totalMs % 1000
        if ms < 0 { ms += 1000; seconds -= 1 }
        // The civil date by arithmetic (H. Hinnant's civil_from_days), not Calendar: with FoundationEssentials alone
        // (the daemon) TimeZone(identifier: "UTC") is nil, as named zones need FoundationInternationalization.
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let z = Int(days) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):"
            + "\(pad(secondOfDay % 60, 2)).\(pad(Int(ms), 3))Z"
    }
}

/// A tiny append-only JSON writer: strings escaped per RFC 8259, everything else written raw.
struct JSONWriter {
    var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(768) }

    mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }
    mutating func comma() { bytes.append(UInt8(ascii: ",")) }
    mutating func key(_ k: String) { string(k); bytes.append(UInt8(ascii: ":")) }

    mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0x00..<0x20, 0x7F:
                let hex = String(b, radix: 16)
                raw("\\u" + String(repeating: "0", count: 4 - hex.count) + hex)
            default: bytes.append(b)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func battery(_ b: UsageRecord.BatteryRef) {
        raw("{"); key("id"); string(b.id); comma()
        key("soc_pct"); raw(OdooRequest.decimal3(b.socPercent)); comma()
        key("slot"); raw(String(b.slot)); raw("}")
    }
}

/// `String(format: "%.3f", value)` through the C library (OdooLink links no full Foundation: no ICU).
func printf3(_ value: Double) -> String {
    withVaList([value]) { args in
        var buffer = [CChar](repeating: 0, count: 400)   // the largest Double is 309 digits before the point
        _ = vsnprintf(&buffer, buffer.count, "%.3f", args)
        return String(cString: buffer)
    }
}
