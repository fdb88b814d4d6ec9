import Foundation
import GatewayCore
import StationStore
import Testing
import TestSupport

/// TrustedClock's decisions and the persisted base (a real SQLite store).
@Suite struct TrustedClockTests {
    let real = Date(timeIntervalSince1970: 1_795_000_000)

    @Test func aClockEarlierThanTheBuildOrNeverSynchronisedIsNotTrusted() {
        let epoch = Date(timeIntervalSince1970: 1_793_491_200)
        let in1970 = TrustedClock(trust: .auto, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { true },
                                  wall: { Date(timeIntervalSince1970: 86_400) })
        #expect(!in1970.isTrusted)
        #expect(in1970.distrust?.contains("earlier than this build") == true)
        let unsync = TrustedClock(trust: .auto, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { false }, wall: { self.real })
        #expect(!unsync.isTrusted)
        #expect(TrustedClock(trust: .system, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { false },
                             wall: { Date(timeIntervalSince1970: 0) }).isTrusted)
        let synced = TrustedClock(trust: .auto, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { true }, wall: { self.real })
        #expect(synced.isTrusted)
        #expect(!TrustedClock(trust: .commands, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { true }, wall: { self.real }).isTrusted)
        // A flag file that does not exist: not trusted.
        #expect(!TrustedClock(trust: .auto, maxSkew: 120, syncFlagPath: "/nonexistent/synchronized", buildEpoch: epoch,
                              kernelSynchronised: { true }, wall: { self.real }).isTrusted)
    }

    @Test func aClockAYearAheadOfTheSignedBaseIsNotTrusted() {
        let epoch = Date(timeIntervalSince1970: 1_793_491_200)
        let ahead = real.addingTimeInterval(365 * 86_400)
        let c = TrustedClock(trust: .auto, maxSkew: 120, buildEpoch: epoch, kernelSynchronised: { true }, wall: { ahead })
        #expect(c.isTrusted)   // nothing to compare with yet
        c.accept(issuedAt: real)
        #expect(!c.isTrusted)
        #expect(c.distrust?.contains("off the signed time base") == true)
        guard case .signedBase(let base?) = c.commandTime() else { Issue.record("not judged against the base"); return }
        #expect(base >= real && base < real.addingTimeInterval(60))
        #expect(c.now() < ahead)
    }

    @Test func theBaseIsPersistedAndRestoredForwardOnly() async throws {
        let dir = try TempDir("trusted-clock")
        defer { dir.remove() }
        let store = try StationStore(path: dir.path("s.sqlite"))
        let c1 = TrustedClock(trust: .commands, maxSkew: 120, wall: { Date(timeIntervalSince1970: 86_400) })
        await c1.accept(issuedAt: real, store: store)
        await c1.accept(issuedAt: real.addingTimeInterval(-3_600), store: store)   // older: not persisted
        #expect(try await store.meta(TrustedClock.metaKey).flatMap(Double.init) == real.timeIntervalSince1970)
        await c1.accept(issuedAt: real.addingTimeInterval(30), store: store)
        try await store.close()

        // "Reboot into 1970": the new run starts from the last base, not from zero.
        let reopened = try StationStore(path: dir.path("s.sqlite"))
        let c2 = TrustedClock(trust: .auto, maxSkew: 120, kernelSynchronised: { false }, wall: { Date(timeIntervalSince1970: 86_400) })
        #expect(c2.baseNow == nil)
        await c2.restore(from: reopened)
        let base = try #require(c2.baseNow)
        #expect(base >= real.addingTimeInterval(30) && base < real.addingTimeInterval(90))
        #expect(c2.commandTime() != .trusted(Date(timeIntervalSince1970: 86_400)))
        #expect(c2.trustedNow() != nil)
        try await reopened.close()
    }
}
