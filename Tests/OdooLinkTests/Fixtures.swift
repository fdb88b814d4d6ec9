import Foundation
import StationDomain
@testable import OdooLink

/// 2026-11-22T10:04:31.250Z, the contract's example.
let exampleDate = Date(timeIntervalSince1970: 1_795_341_871.25)

func sampleRecord(key: String = UUID().uuidString.lowercased(), subscription: String = "SUB/2026/00042",
                  customer: String = "cust-789", energy: Double = 1.944, batteryIn: Bool = true) -> UsageRecord {
    UsageRecord(
        idempotencyKey: key, subscriptionRef: subscription, planInstanceID: "pi-000123", customerID: customer,
        stationID: "TG-LOME-0007", outletCode: "TG-LM-001", occurredAt: exampleDate, recordedOffline: false,
        lines: [
            .init(serviceID: "service-swap-count", quantity: 1, unit: "1"),
            .init(serviceID: "service-energy-gage", quantity: energy, unit: "kWh"),
        ],
        swapID: key,
        batteryOut: .init(id: "B45-000311", socPercent: 98.7, slot: 4),
        batteryIn: batteryIn ? .init(id: "B45-000123", socPercent: 9.5, slot: 9) : nil)
}

extension UsageOutcome {
    var isTransient: Bool { if case .transient = self { return true }; return false }
    var isCredentials: Bool { if case .credentials = self { return true }; return false }
    var isRejected: Bool { if case .rejected = self { return true }; return false }
    var retryAfter: Double? { if case .transient(_, let r) = self { return r }; return nil }
    var reasonText: String {
        switch self {
        case .transient(let r, _), .credentials(let r): return r
        case .rejected(let n, let m): return n + " " + m
        default: return ""
        }
    }
}
