/// The monthly uplink budget governor (issue 11 item 3, `publishing.monthly_budget_mb`): pure arithmetic, no clock
/// and no I/O. The gateway feeds it the bytes of its rolling 24 h window (UplinkMeter: every class, both directions)
/// at most once per `publishing.budget_check_interval`; the governor forecasts the month from them and answers with
/// a widening factor for telemetry only: the `changes` and `full` intervals and every deadband are multiplied by it.
/// Events, replies, status and inventory are never touched.
///
/// - forecast = bytes in the window × 30 days / the span the window covers (the time since the meter started,
///   at least 1 h so that a start-up burst is not multiplied by thousands, at most 24 h);
/// - forecast > budget: the factor doubles, up to `maxFactor`;
/// - forecast ≤ half the budget and the factor above 1: it halves (halving roughly doubles what telemetry costs,
///   so a forecast between half and all of the budget keeps the factor where it is: no flapping at the edge).
/// One step per evaluation: the rolling window lags behind a change, so each step gets a check interval to show.
public struct TelemetryGovernor: Equatable, Sendable {
    public static let monthSeconds = 30.0 * 86_400
    public static let minimumSpan = 3600.0
    public static let windowSpan = 86_400.0

    /// The monthly budget in bytes (> 0).
    public var budgetBytes: Double
    /// The widest factor (a power of two ≥ 1).
    public var maxFactor: Int
    /// 1, 2, 4 … maxFactor.
    public private(set) var factor = 1
    /// The last forecast of the month's bytes (0 before the first evaluation).
    public private(set) var forecastBytes = 0.0

    public init(budgetBytes: Double, maxFactor: Int = 8) {
        self.budgetBytes = budgetBytes; self.maxFactor = max(1, maxFactor)
    }

    /// True while telemetry is widened (factor above 1).
    public var active: Bool { factor > 1 }

    /// The month's bytes forecast from `windowBytes` counted over the last `observedSeconds` (capped at 24 h).
    public static func forecast(windowBytes: Int, observedSeconds: Double) -> Double {
        let span = min(windowSpan, max(minimumSpan, observedSeconds))
        return Double(windowBytes) * monthSeconds / span
    }

    /// One evaluation with a new forecast; returns whether the factor changed.
    @discardableResult
    public mutating func evaluate(forecast: Double) -> Bool {
        forecastBytes = forecast
        let before = factor
        if forecast > budgetBytes {
            factor = min(maxFactor, factor * 2)
        } else if factor > 1, forecast * 2 <= budgetBytes {
            factor = max(1, factor / 2)
        }
        return factor != before
    }
}
