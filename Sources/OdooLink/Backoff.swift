// How long the sender waits before trying a record again.

/// Exponential backoff with full jitter for transient failures, a slow near-fixed delay for credentials
/// problems. `attempt` counts the failed attempts so far (1 after the first failure).
public struct Backoff: Sendable, Equatable {
    /// Seconds: the ceiling of the first retry's jitter window; it doubles with each attempt.
    public var base: Double = 2
    /// Seconds: no delay is longer (a server's Retry-After included).
    public var cap: Double = 600
    /// Seconds, ±20 %: the delay after a credentials problem (an operator has to act).
    public var credentialsDelay: Double = 300

    public init() {}

    public init(base: Double, cap: Double, credentialsDelay: Double) {
        self.base = base; self.cap = cap; self.credentialsDelay = credentialsDelay
    }

    /// The exponential window for `attempt`: min(cap, base · 2^(attempt−1)).
    public func window(attempt: Int) -> Double {
        let exponent = Double(min(max(attempt, 1) - 1, 62))
        return min(cap, base * pow2(exponent))
    }

    /// Seconds to wait before the next attempt. `random` is uniform in 0..<1 (injected for tests).
    /// - transient: full jitter, `random · window(attempt)`, but never less than the server's
    ///   `retryAfter`; both capped at `cap`.
    /// - credentials: `credentialsDelay · (0.8 + 0.4 · random)`, whatever the attempt.
    /// - recorded, duplicate, rejected: 0 (these are not retried).
    public func delay(attempt: Int, outcome: UsageOutcome, random: Double) -> Double {
        let r = random.isFinite ? min(max(random, 0), 1) : 0
        switch outcome {
        case .recorded, .duplicate, .rejected:
            return 0
        case .credentials:
            return max(0, credentialsDelay) * (0.8 + 0.4 * r)
        case .transient(_, let retryAfter):
            let jittered = r * window(attempt: attempt)
            let floor = retryAfter.map { $0.isFinite ? max(0, $0) : cap } ?? 0
            return min(cap, max(jittered, floor))
        }
    }

    private func pow2(_ e: Double) -> Double {
        var v = 1.0
        var i = 0.0
        while i < e { v *= 2; i += 1 }
        return v
    }
}
