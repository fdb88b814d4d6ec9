import Testing
@testable import OdooLink

@Suite struct BackoffTests {
    let backoff = Backoff()
    let transient = UsageOutcome.transient(reason: "HTTP 503", retryAfter: nil)

    @Test func windowGrowsExponentiallyUpToTheCap() {
        #expect(backoff.window(attempt: 1) == 2)
        #expect(backoff.window(attempt: 2) == 4)
        #expect(backoff.window(attempt: 3) == 8)
        #expect(backoff.window(attempt: 9) == 512)
        #expect(backoff.window(attempt: 10) == 600)
        #expect(backoff.window(attempt: 10_000) == 600)
        #expect(backoff.window(attempt: 0) == 2)
        #expect(backoff.window(attempt: -3) == 2)
        // the top of the jitter range grows with the attempt
        #expect(backoff.delay(attempt: 4, outcome: transient, random: 0.5) > backoff.delay(attempt: 3, outcome: transient, random: 0.5))
    }

    @Test func fullJitterStaysInsideTheWindow() {
        for attempt in 1...15 {
            let window = backoff.window(attempt: attempt)
            #expect(backoff.delay(attempt: attempt, outcome: transient, random: 0) == 0)
            for r in stride(from: 0.0, to: 1.0, by: 0.05) {
                let d = backoff.delay(attempt: attempt, outcome: transient, random: r)
                #expect(d >= 0 && d < window, "attempt \(attempt) r \(r): \(d)")
                #expect(abs(d - r * window) < 1e-9)
            }
            #expect(backoff.delay(attempt: attempt, outcome: transient, random: 0.999_999) <= backoff.cap)
        }
        // out-of-range randoms are clamped
        #expect(backoff.delay(attempt: 3, outcome: transient, random: -1) == 0)
        #expect(backoff.delay(attempt: 3, outcome: transient, random: 7) <= 8)
        #expect(backoff.delay(attempt: 3, outcome: transient, random: .nan) == 0)
    }

    @Test func retryAfterIsHonoured() {
        let limited = UsageOutcome.transient(reason: "HTTP 429", retryAfter: 30)
        #expect(backoff.delay(attempt: 1, outcome: limited, random: 0) == 30)
        #expect(backoff.delay(attempt: 1, outcome: limited, random: 0.99) == 30)
        // a longer jittered delay is kept
        #expect(backoff.delay(attempt: 8, outcome: limited, random: 0.5) == 128)
        // but never past the cap
        #expect(backoff.delay(attempt: 1, outcome: .transient(reason: "x", retryAfter: 86_400), random: 0) == 600)
        #expect(backoff.delay(attempt: 1, outcome: .transient(reason: "x", retryAfter: -5), random: 0) == 0)
    }

    @Test func credentialsWaitSlowlyWhateverTheAttempt() {
        for attempt in [1, 2, 10, 100] {
            for r in [0.0, 0.25, 0.5, 0.999] {
                let d = backoff.delay(attempt: attempt, outcome: .credentials(reason: "AccessDenied"), random: r)
                #expect(d >= 240 && d <= 360)
            }
        }
        #expect(backoff.delay(attempt: 1, outcome: .credentials(reason: "x"), random: 0.5) == 300)
        var fast = Backoff()
        fast.credentialsDelay = 10
        #expect(fast.delay(attempt: 1, outcome: .credentials(reason: "x"), random: 0.5) == 10)
    }

    @Test func settledAndRejectedAreNotRetried() {
        #expect(backoff.delay(attempt: 3, outcome: .recorded(usageLogID: 1), random: 0.5) == 0)
        #expect(backoff.delay(attempt: 3, outcome: .duplicate(usageLogID: 1), random: 0.5) == 0)
        #expect(backoff.delay(attempt: 3, outcome: .rejected(errorName: "v", message: "m"), random: 0.5) == 0)
        #expect(!UsageOutcome.rejected(errorName: "v", message: "m").shouldRetry)
        #expect(UsageOutcome.credentials(reason: "x").shouldRetry)
        #expect(UsageOutcome.duplicate(usageLogID: nil).isSettled)
    }

    @Test func customBaseAndCap() {
        let b = Backoff(base: 0.5, cap: 3, credentialsDelay: 60)
        #expect(b.window(attempt: 1) == 0.5)
        #expect(b.window(attempt: 3) == 2)
        #expect(b.window(attempt: 4) == 3)
    }
}
