import Synchronization
import Testing
@testable import OdooLink

@Suite struct AsyncLimiterTests {
    final class Flag: Sendable {
        let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    @Test func boundsAndHandsOverASlot() async throws {
        let limiter = AsyncLimiter(limit: 2)
        #expect(await limiter.acquire())
        #expect(await limiter.acquire())
        let got = Flag()
        let waiter = Task { let ok = await limiter.acquire(); got.set(); return ok }
        try await Task.sleep(for: .milliseconds(100))
        #expect(!got.isSet, "a third acquire must wait while two slots are taken")
        limiter.release()
        #expect(await waiter.value)
        #expect(got.isSet)
    }

    @Test func aCancelledWaiterGivesUpWithoutTakingASlot() async {
        let limiter = AsyncLimiter(limit: 1)
        #expect(await limiter.acquire())
        let waiter = Task { await limiter.acquire() }
        waiter.cancel()
        #expect(await waiter.value == false)
        limiter.release()
        #expect(await limiter.acquire())
    }
}
