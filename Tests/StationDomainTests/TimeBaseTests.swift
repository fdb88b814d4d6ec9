import Foundation
import StationDomain
import Testing

@Suite struct TimeBaseTests {
    let t0 = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func movesForwardOnlyAndCountsMonotonicTime() {
        var b = TimeBase()
        let i0 = ContinuousClock.now
        #expect(b.now(at: i0) == nil)
        let moved0 = b.advance(to: t0, at: i0)
        #expect(moved0)
        #expect(b.live)
        // 10 s later (monotonic) the estimate is t0 + 10.
        let i10 = i0.advanced(by: .seconds(10))
        #expect(b.now(at: i10) == t0.addingTimeInterval(10))
        // An older issued_at does not move it back, nor one equal to the estimate.
        let moved1 = b.advance(to: t0.addingTimeInterval(5), at: i10)
        #expect(!moved1)
        let moved2 = b.advance(to: t0.addingTimeInterval(10), at: i10)
        #expect(!moved2)
        #expect(b.now(at: i10) == t0.addingTimeInterval(10))
        // A newer one moves it.
        let moved3 = b.advance(to: t0.addingTimeInterval(100), at: i10)
        #expect(moved3)
        #expect(b.now(at: i10.advanced(by: .seconds(1))) == t0.addingTimeInterval(101))
    }

    @Test func aRestoredBaseCountsFromTheRestartAndNeverMovesTheCurrentOneBack() {
        var b = TimeBase()
        let i0 = ContinuousClock.now
        b.restore(t0, at: i0)
        #expect(!b.live)
        #expect(b.now(at: i0.advanced(by: .seconds(3))) == t0.addingTimeInterval(3))
        b.restore(t0.addingTimeInterval(-50), at: i0)
        #expect(b.now(at: i0) == t0)
    }
}
