import ABSProtocol
import Foundation
import Testing

/// Property-style: random mutations of valid messages never crash the verifier, and a mutated
/// envelope is either refused or means exactly what the original meant.
@Suite struct MutationTests {
    let key = ABSKey()

    /// A command that touches most of the parser: a delta with records, unicode, escapes, numbers.
    var sampleCommand: [UInt8] {
        json(merged(header(), ["kind": "delta", "base_version": 41, "version": 42, "remove": ["pi-000044", "pi-é\\/\""],
                               "upsert": [record(1), record(2, ["energy_used_kwh": 1.5e-3, "batteries_out": []])]]))
    }

    static func mutate(_ input: [UInt8], _ rng: inout SplitMix64) -> [UInt8] {
        var bytes = input
        let interesting: [UInt8] = Array("{}[]\",:\\ 0-1.eE+tfnu=/A\n".utf8) + [0x00, 0x7F, 0x80, 0xC3, 0xFF]
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            guard !bytes.isEmpty else { bytes = [interesting.randomElement(using: &rng)!]; continue }
            let i = Int.random(in: 0..<bytes.count, using: &rng)
            switch Int.random(in: 0..<7, using: &rng) {
            case 0: bytes[i] ^= UInt8(1) << UInt8.random(in: 0..<8, using: &rng)
            case 1: bytes[i] = UInt8.random(in: 0...255, using: &rng)
            case 2: bytes[i] = interesting.randomElement(using: &rng)!
            case 3: bytes.remove(at: i)
            case 4: bytes.insert(interesting.randomElement(using: &rng)!, at: i)
            case 5: bytes.removeSubrange(i..<min(bytes.count, i + Int.random(in: 1...16, using: &rng)))
            default:
                let j = Int.random(in: i..<min(bytes.count, i + 16), using: &rng)
                bytes.insert(contentsOf: bytes[i...j], at: j + 1)
            }
        }
        return bytes
    }

    @Test func mutatedEnvelopesAreRefusedOrIdentical() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("MutationTests.mutatedEnvelopesAreRefusedOrIdentical seed \(seed)")
        var rng = SplitMix64(seed: seed)
        let verifier = try key.verifier()
        let envelope = try key.envelope(sampleCommand)
        let original = try #require(verifier.verify(command: "entitlements", payload: envelope, retained: false, now: testNow).command)
        var refused = 0, identical = 0
        var codes: [ReplyCode: Int] = [:]
        for iteration in 0..<4000 {
            let mutated = Self.mutate(envelope, &rng)
            switch verifier.verify(command: "entitlements", payload: mutated, retained: false, now: testNow) {
            case .failure(let r):
                refused += 1
                codes[r.code, default: 0] += 1
                #expect([.malformed, .badSignature].contains(r.code), "iteration \(iteration): \(r)")
                #expect(r.requestID == nil, "iteration \(iteration): an unverified request_id was echoed")
            case .success(let c):
                identical += 1
                #expect(c == original, "iteration \(iteration) (seed \(seed)): accepted a changed command from \(String(decoding: mutated, as: UTF8.self))")
            }
        }
        print("MutationTests: \(refused) refused \(codes.map { "\($0.key.rawValue)=\($0.value)" }.sorted()), \(identical) identical")
        #expect(refused > 0)
    }

    /// Mutated command JSON that is then properly signed: anything may come out, but never a crash,
    /// and what is accepted respects the contract's ranges.
    @Test func mutatedSignedCommandsNeverCrash() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("MutationTests.mutatedSignedCommandsNeverCrash seed \(seed)")
        var rng = SplitMix64(seed: seed)
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        let verifier = try key.verifier(policy)
        let samples: [(String, [UInt8])] = [
            ("entitlements", sampleCommand),
            ("unlock", json(merged(header(), ["slot": 12, "operator_id": "tech-1", "reason": "jam"]))),
            ("slot", json(merged(header(), ["slot": 3, "in_service": false]))),
            ("swap", json(merged(header(), ["customer_id": "cust-789", "plan_instance_id": "pi-1", "channel": "app"]))),
        ]
        var accepted = 0, refused = 0
        for iteration in 0..<3000 {
            let (name, command) = samples[iteration % samples.count]
            let mutated = Self.mutate(command, &rng)
            // Signed, and also bare (unsigned mode), so both parse paths see the mutation.
            for payload in [try key.envelope(mutated), mutated] {
                switch verifier.verify(command: name, payload: payload, retained: false, now: testNow) {
                case .failure:
                    refused += 1
                case .success(let c):
                    accepted += 1
                    switch c.body {
                    case .unlock(let slot, let op, let reason):
                        #expect((1...48).contains(slot) && !op.isEmpty && !reason.isEmpty, "iteration \(iteration)")
                    case .slot(let slot, _):
                        #expect((1...48).contains(slot), "iteration \(iteration)")
                    case .swap(let customer, _, _):
                        #expect(!customer.isEmpty, "iteration \(iteration)")
                    case .entitlementDelta(let base, let version, let upsert, _, _):
                        #expect(version > base && upsert.allSatisfy { $0.validFrom < $0.validUntil && $0.swapsUsed >= 0 },
                                "iteration \(iteration)")
                    case .entitlementSnapshot, .entitlementSnapshotPart, .ping, .rebirth:
                        break
                    }
                    #expect(c.header.expiresAt > testNow, "iteration \(iteration)")
                }
            }
        }
        print("MutationTests: signed mutations \(accepted) accepted, \(refused) refused")
        #expect(refused > 0)
    }

    /// Random bytes, of random lengths, as envelope or bare command.
    @Test func randomBytesAreRefused() throws {
        let seed = UInt64.random(in: 0...UInt64.max)
        print("MutationTests.randomBytesAreRefused seed \(seed)")
        var rng = SplitMix64(seed: seed)
        var policy = CommandPolicy()
        policy.allowUnsigned = true
        let verifier = try key.verifier(policy)
        for iteration in 0..<2000 {
            let count = Int.random(in: 0...64, using: &rng)
            let bytes = (0..<count).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let name = CommandName.allCases[iteration % CommandName.allCases.count].rawValue
            #expect(verifier.verify(command: name, payload: bytes, retained: false, now: testNow).refusal != nil)
            #expect(verifier.verify(command: name, payload: try key.envelope(bytes), retained: false, now: testNow).refusal != nil)
        }
    }
}
