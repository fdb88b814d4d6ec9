#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationSupport

extension UsageView {
    /// The usage outbox as a technician reads it (`swapctl usage list`, `swapctl queues`, `swapgate store usage list`).
    public static func table(_ items: [UsageView]) -> String {
        TextTable.render(["key", "state", "attempts", "occurred", "customer", "energy kWh", "last error"], items.map {
            [$0.key, $0.state, String($0.attempts), $0.occurredAt, $0.customerID, $0.energyKWh.map { cFormat("%.3f", $0) } ?? "-",
             String(($0.lastError ?? "-").prefix(60))]
        })
    }
}
