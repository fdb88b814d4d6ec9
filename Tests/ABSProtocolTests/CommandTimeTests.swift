import ABSProtocol
import Foundation
import Testing

/// Commands judged against the signed time base while the station's clock is not trusted (contract 1.1 "Time").
@Suite struct CommandTimeTests {
    let key = ABSKey()

    func ping(issued: Double, expires: Double) throws -> [UInt8] {
        try key.envelope(json(header("r-\(UUID().uuidString.prefix(8))", issued: issued, expires: expires)))
    }

    func verify(_ env: [UInt8], _ time: CommandTime) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier().verify(command: "ping", payload: env, retained: false, time: time)
    }

    @Test func aBoardClockIn1970RefusesEverythingTheSignedBaseAcceptsTheCurrentCommand() throws {
        let env = try ping(issued: -5, expires: 300)
        // Trusted 1970 clock: issued_at is decades in its future (what a board without the time base did).
        let at1970 = try verify(env, .trusted(Date(timeIntervalSince1970: 86_400)))
        guard case .failure(let r) = at1970 else { Issue.record("accepted against 1970"); return }
        #expect(r.code == .expired)
        // Signed base at testNow: accepted.
        guard case .success = try verify(env, .signedBase(testNow)) else { Issue.record("refused against the base"); return }
        // No base yet: the command's own issued_at is the base; accepted.
        guard case .success = try verify(env, .signedBase(nil)) else { Issue.record("refused without a base"); return }
    }

    @Test func anIssuedAtAheadOfTheBaseIsNotSkewButAnExpiryBeforeTheBaseIsExpired() throws {
        // Issued an hour after the base (beyond any skew): accepted, it moves the base (the caller's job).
        let ahead = try ping(issued: 3_600, expires: 3_900)
        guard case .success = try verify(ahead, .signedBase(testNow)) else { Issue.record("refused an issued_at ahead"); return }
        guard case .failure(let skew) = try verify(ahead, .trusted(testNow)) else { Issue.record("trusted clock ignored skew"); return }
        #expect(skew.code == .expired)
        // Expired against the base: refused expired, whatever the (untrusted) wall clock says.
        let old = try ping(issued: -600, expires: -1)
        guard case .failure(let r) = try verify(old, .signedBase(testNow)) else { Issue.record("accepted an expired command"); return }
        #expect(r.code == .expired)
        #expect(r.message.contains("signed time base"))
    }
}
