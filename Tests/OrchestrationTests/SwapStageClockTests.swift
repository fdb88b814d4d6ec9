import Foundation
import StationDomain
import Testing
@testable import GatewayCore

/// Trusted time and swaps (issue 12): while the board clock is untrusted, entitlements are judged against the
/// signed time base (Settings.now), but a swap's stage timers run on the board's own clock (Settings.wallClock),
/// the clock the coordinator evaluates and sleeps against. A machine started on the base and judged on the board
/// clock aborted at once on a board a year ahead and never timed out on a board in 1970.
@Suite struct SwapStageClockTests {
    func run(boardOffset: Double) async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()])
        st.wall.advance(boardOffset)   // the signed base stays at Station.now
        let board = Station.now.addingTimeInterval(boardOffset)
        let a = try #require(await st.operations.requestSwap(header: st.header("swap-board-\(Int(boardOffset))"), customerID: "cust-1",
                                                             planInstanceID: nil, channel: nil).value)
        var commands = st.cabinet.issued.makeAsyncIterator()
        _ = await commands.next()   // the return door
        #expect(try #require(await st.coordinator.nextDeadline()) == board.addingTimeInterval(120))
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().map(\.swapID) == [a.swapID], "the swap ended before its timeout")
        st.wall.advance(119)
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().map(\.swapID) == [a.swapID])
        st.wall.advance(1)
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().isEmpty, "the return timeout, 120 s on the board clock")
    }

    @Test func aBoardAYearAheadTimesTheSwapOnItsOwnClock() async throws {
        try await run(boardOffset: 365 * 86_400)
    }

    @Test func aBoardIn1970TimesTheSwapOnItsOwnClock() async throws {
        try await run(boardOffset: -Station.now.timeIntervalSince1970 + 86_400)
    }
}
