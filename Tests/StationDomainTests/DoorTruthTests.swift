import Testing
@testable import StationDomain

/// Issue 9 item 5: every door opening has its close, in order, and a close carries its opening's flag —
/// also when the door closed and opened again between two polls, and across a gateway restart.
@Suite struct DoorTruthTests {
    static let openLocked: UInt16 = 0b0100_0101     // battery, door OPEN, lock engaged (forced open)
    static let closedLocked: UInt16 = 0b0100_0111
    static let openUnlocked: UInt16 = 0b0100_0001   // battery, door open, lock released

    @Test func closedAndReopenedBetweenPollsGetsItsClose() {
        var t = StationTracker()
        _ = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 5))]), at: 0)
        let opened = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openLocked, doorOpens: 6))]), at: 1000)
        #expect(opened == [.doorOpened(slot: 1, wasUnlocked: false)])
        // Closed and opened again between two polls: the state bits say "open" both times, the counter moved.
        let again = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openLocked, doorOpens: 7))]), at: 2000)
        #expect(again == [.doorClosed(slot: 1, authorised: false), .doorOpened(slot: 1, wasUnlocked: false)])
        // Open → (close, open, close) between polls: three changes, ending closed.
        let more = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 8))]), at: 3000)
        #expect(more == [.doorClosed(slot: 1, authorised: false), .doorOpened(slot: 1, wasUnlocked: false),
                         .doorClosed(slot: 1, authorised: false)])
    }

    /// Any run of readings: the door events alternate opened/closed, never two of a kind in a row, and their
    /// count matches the door-open counter.
    @Test func doorEventsAlwaysAlternate() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0 ..< 200 {
            var t = StationTracker()
            var count: UInt16 = 100
            var open = false
            var events: [StationChange] = []
            _ = t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: count))]), at: 0)
            var physicalOpens = 0
            for step in 1 ... 30 {
                // Between two polls the door changes 0…3 times.
                for _ in 0 ..< Int.random(in: 0 ... 3, using: &rng) {
                    open.toggle()
                    if open { count &+= 1; physicalOpens += 1 }
                }
                let state = open ? Self.openLocked : Self.closedLocked
                events += t.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: state, doorOpens: count))]),
                                  at: Int64(step) * 1000).filter { if case .doorOpened = $0 { true } else if case .doorClosed = $0 { true } else { false } }
            }
            var expectOpen = true
            for e in events {
                if case .doorOpened = e { #expect(expectOpen, "\(events)") } else { #expect(!expectOpen, "\(events)") }
                expectOpen.toggle()
            }
            #expect(events.filter { if case .doorOpened = $0 { true } else { false } }.count == physicalOpens)
            #expect(expectOpen == !open, "the last event matches the door's state")
        }
    }

    @Test func forcedOpenBeforeARestartIsStillUnauthorisedWhenClosedAfterIt() {
        // The stored state: the door open, its opening unauthorised — even if the lock reads released now.
        var before = StationTracker()
        _ = before.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: 0b0100_0011, doorOpens: 5))]), at: 0)   // released
        _ = before.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openUnlocked, doorOpens: 6))]), at: 1000,
                         unlockedByGateway: [])
        #expect(before.openDoors == [1: true])   // the lock was released: authorised
        var forced = StationTracker()
        _ = forced.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 5))]), at: 0)
        _ = forced.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openLocked, doorOpens: 6))]), at: 1000)
        #expect(forced.openDoors == [1: false])
        let stored = Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openUnlocked, doorOpens: 6))])

        // Restarted with the stored flag: the close is unauthorised, whatever the lock bit shows.
        var restarted = StationTracker()
        restarted.seed(stored, quarantine: [:], openDoors: forced.openDoors)
        let closed = restarted.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 6))]), at: 5000).filter { $0.slot == 1 }
        #expect(closed == [.doorClosed(slot: 1, authorised: false)])
        #expect(restarted.openDoors.isEmpty)

        // A state stored without flags (older version): a door found open behind an engaged lock was forced.
        var old = StationTracker()
        old.seed(Fixture.snapshot([Fixture.status(1, Fixture.slot(state: Self.openLocked, doorOpens: 6))]), quarantine: [:])
        #expect(old.apply(Fixture.snapshot([Fixture.status(1, Fixture.slot(doorOpens: 6))]), at: 5000).filter { $0.slot == 1 }
                == [.doorClosed(slot: 1, authorised: false)])
    }
}
