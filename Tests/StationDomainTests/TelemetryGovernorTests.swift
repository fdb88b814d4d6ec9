import Testing
@testable import StationDomain

/// The monthly budget governor's arithmetic (publishing.monthly_budget_mb): the forecast, one step per evaluation,
/// the cap, the dead zone between half the budget and the budget, relaxing when well under.
@Suite struct TelemetryGovernorTests {
    @Test func forecastScalesTheWindowToAMonth() {
        // A full day of 1 MB: 30 MB a month.
        #expect(TelemetryGovernor.forecast(windowBytes: 1_000_000, observedSeconds: 86_400) == 30_000_000)
        // Longer than a day: the window is 24 h.
        #expect(TelemetryGovernor.forecast(windowBytes: 1_000_000, observedSeconds: 5 * 86_400) == 30_000_000)
        // Six hours observed: ×4 to a day.
        #expect(TelemetryGovernor.forecast(windowBytes: 250_000, observedSeconds: 6 * 3600) == 30_000_000)
        // A start-up burst in the first minute counts as at least an hour's worth, not 1440 minutes' worth.
        #expect(TelemetryGovernor.forecast(windowBytes: 10_000, observedSeconds: 60) == 10_000 * 720)
    }

    @Test func widensOneStepPerEvaluationUpToTheCap() {
        var g = TelemetryGovernor(budgetBytes: 30_000_000, maxFactor: 8)
        #expect(!g.active && g.factor == 1)
        #expect(g.evaluate(forecast: 45_000_000) && g.factor == 2 && g.active)
        #expect(g.evaluate(forecast: 40_000_000) && g.factor == 4)
        #expect(g.evaluate(forecast: 31_000_000) && g.factor == 8)
        #expect(!g.evaluate(forecast: 90_000_000) && g.factor == 8, "capped at maxFactor")
        #expect(g.forecastBytes == 90_000_000)
    }

    @Test func holdsBetweenHalfAndAllOfTheBudgetAndRelaxesBelowHalf() {
        var g = TelemetryGovernor(budgetBytes: 30_000_000, maxFactor: 16)
        g.evaluate(forecast: 31_000_000); g.evaluate(forecast: 31_000_000)
        #expect(g.factor == 4)
        #expect(!g.evaluate(forecast: 30_000_000) && g.factor == 4, "exactly at the budget: not over it")
        #expect(!g.evaluate(forecast: 15_000_001) && g.factor == 4, "just above half: relaxing would go over again")
        #expect(g.evaluate(forecast: 15_000_000) && g.factor == 2, "at half: one step back")
        #expect(g.evaluate(forecast: 1_000) && g.factor == 1)
        #expect(!g.evaluate(forecast: 0) && g.factor == 1 && !g.active, "never below 1")
    }

    @Test func aCapOfOneNeverWidens() {
        var g = TelemetryGovernor(budgetBytes: 1, maxFactor: 1)
        #expect(!g.evaluate(forecast: 1e12) && g.factor == 1)
    }

    @Test func widenedDeadbandsAreTheConfiguredOnesTimesTheFactor() {
        var base = TelemetryDeadbands()
        base.soc = 1.5
        let w = base.scaled(by: 4)
        #expect(w.soc == 6 && w.cellVoltage == 0.08 && w.power == 400)
        // A SoC move that was reported at factor 1 is inside the widened deadband.
        var d = TelemetryDiff(deadbands: w)
        d.baseline("slot:1", TelemetryDiff.flatten(["bms": ["soc": 50.0] as [String: any Sendable]]))
        #expect(d.changes("slot:1", TelemetryDiff.flatten(["bms": ["soc": 55.0] as [String: any Sendable]])).isEmpty)
        #expect(d.changes("slot:1", TelemetryDiff.flatten(["bms": ["soc": 56.0] as [String: any Sendable]])) == ["bms.soc"])
    }
}
