import Foundation
import GatewayCore
import Testing

@Suite struct MetricsTests {
    @Test func prometheusTextCarriesSwapsOdooAndDecisionLatency() {
        let m = GatewayMetrics()
        m.countSwap(outcome: "completed")
        m.countSwap(outcome: "completed")
        m.countOdoo("credentials")
        m.setOdooCredentialAlarm(true)
        m.observeDecision(seconds: 0.004)
        m.observeDecision(seconds: 0.2)
        let text = m.prometheusText()
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains(#"swapgate_swaps_total{outcome="completed"} 2"#))
        #expect(lines.contains(#"swapgate_odoo_usage_total{outcome="credentials"} 1"#))
        #expect(lines.contains("swapgate_odoo_credentials_alarm 1"))
        #expect(lines.contains(#"swapgate_decision_seconds_bucket{le="0.005"} 1"#))
        #expect(lines.contains(#"swapgate_decision_seconds_bucket{le="0.25"} 2"#))
        #expect(lines.contains("swapgate_decision_seconds_count 2"))
        // Every sample line is "name{labels} value" or "name value" with a number.
        for line in lines where !line.hasPrefix("#") {
            #expect(Double(line.split(separator: " ").last ?? "") != nil, "\(line)")
        }
    }
}
