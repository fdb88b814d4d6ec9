#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// One usage record for Odoo's `/api/subscription/usage_log` (shared/specs/odoo-usage-log.md), written in
/// the same transaction as the completed swap and sent by the forwarder. Its `idempotencyKey` never changes.
public struct UsageRecord: Sendable, Codable, Hashable {
    public struct Line: Sendable, Codable, Hashable {
        public var serviceID: String
        public var quantity: Double
        public var unit: String
        public init(serviceID: String, quantity: Double, unit: String) {
            self.serviceID = serviceID; self.quantity = quantity; self.unit = unit
        }
        enum CodingKeys: String, CodingKey { case serviceID = "service_id", quantity, unit }
    }
    public struct BatteryRef: Sendable, Codable, Hashable {
        public var id: String
        public var socPercent: Double
        public var slot: Int
        public init(id: String, socPercent: Double, slot: Int) { self.id = id; self.socPercent = socPercent; self.slot = slot }
        enum CodingKeys: String, CodingKey { case id, socPercent = "soc_pct", slot }
    }

    public var idempotencyKey: String
    public var subscriptionRef: String
    public var planInstanceID: String
    public var customerID: String
    public var stationID: String
    public var outletCode: String
    public var occurredAt: Date
    public var recordedOffline: Bool
    public var lines: [Line]
    public var swapID: String
    public var batteryOut: BatteryRef
    public var batteryIn: BatteryRef?

    public init(idempotencyKey: String, subscriptionRef: String, planInstanceID: String, customerID: String,
                stationID: String, outletCode: String, occurredAt: Date, recordedOffline: Bool, lines: [Line],
                swapID: String, batteryOut: BatteryRef, batteryIn: BatteryRef?) {
        self.idempotencyKey = idempotencyKey; self.subscriptionRef = subscriptionRef; self.planInstanceID = planInstanceID
        self.customerID = customerID; self.stationID = stationID; self.outletCode = outletCode; self.occurredAt = occurredAt
        self.recordedOffline = recordedOffline; self.lines = lines; self.swapID = swapID; self.batteryOut = batteryOut
        self.batteryIn = batteryIn
    }
}

/// Where a usage record is in its life at the station.
public enum UsageState: String, Sendable, Codable, Hashable {
    /// Waiting to be sent (or being retried).
    case pending
    /// Odoo answered `recorded` or `duplicate`: settled, kept for a while for technicians.
    case settled
    /// Odoo refused it as invalid (ValidationError, UserError, MissingError): kept, visible, re-sendable by hand.
    case rejected
}
