import ABSProtocol
import Crypto
import Foundation
import Testing

/// The station's clock in these tests.
let testNow = Date(timeIntervalSince1970: 1_795_000_000)  // 2026-11-18T11:06:40Z

/// An ABS signing key and the station's view of it.
struct ABSKey {
    let kid: String
    let privateKey: Curve25519.Signing.PrivateKey

    init(kid: String = "abs-test-1", privateKey: Curve25519.Signing.PrivateKey = .init()) {
        self.kid = kid
        self.privateKey = privateKey
    }

    var publicKeyBase64: String { privateKey.publicKey.rawRepresentation.base64EncodedString() }

    var ring: KeyRing {
        get throws { try KeyRing(keys: [kid: publicKeyBase64]) }
    }

    func verifier(_ policy: CommandPolicy = CommandPolicy()) throws -> CommandVerifier {
        CommandVerifier(keys: try ring, policy: policy)
    }

    /// The envelope {kid, payload, sig} of exactly these command bytes.
    func envelope(_ command: [UInt8], kid: String? = nil) throws -> [UInt8] {
        let sig = try privateKey.signature(for: command)
        return envelope(payloadBase64: Data(command).base64EncodedString(), sigBase64: sig.base64EncodedString(),
                        kid: kid ?? self.kid)
    }

    func envelope(payloadBase64: String, sigBase64: String?, kid: String?) -> [UInt8] {
        var parts: [String] = []
        if let kid { parts.append("\"kid\":\(jsonString(kid))") }
        parts.append("\"payload\":\"\(payloadBase64)\"")
        if let sigBase64 { parts.append("\"sig\":\"\(sigBase64)\"") }
        return Array("{\(parts.joined(separator: ","))}".utf8)
    }
}

/// `s` as a JSON string literal.
func jsonString(_ s: String) -> String {
    let array = String(decoding: try! JSONSerialization.data(withJSONObject: [s], options: [.withoutEscapingSlashes]),
                       as: UTF8.self)
    return String(array.dropFirst().dropLast())  // ["…"] → "…"
}

/// Compact JSON with sorted keys (what ABS sends, for the tests' purposes).
func json(_ object: [String: Any]) -> [UInt8] {
    Array(try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
}

/// RFC 3339 UTC with milliseconds.
func rfc3339(_ date: Date) -> String {
    let f = ISO8601DateFormatter()
    f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    f.timeZone = TimeZone(identifier: "UTC")
    return f.string(from: date)
}

/// A valid header: issued 5 s ago, expires in 5 min.
func header(_ requestID: String = "r-91", issued: Double = -5, expires: Double = 300) -> [String: Any] {
    ["request_id": requestID, "issued_at": rfc3339(testNow.addingTimeInterval(issued)),
     "expires_at": rfc3339(testNow.addingTimeInterval(expires))]
}

func merged(_ a: [String: Any], _ b: [String: Any]) -> [String: Any] {
    a.merging(b) { $1 }
}

/// An entitlement record as ABS sends it (entitlements.md "The record").
func record(_ n: Int = 123, _ changes: [String: Any] = [:]) -> [String: Any] {
    let base: [String: Any] = [
        "plan_instance_id": String(format: "pi-%06d", n), "customer_id": "cust-\(n)",
        "subscription_ref": "SUB/2026/\(String(format: "%05d", n))",
        "status": "active", "valid_from": "2026-11-01T00:00:00Z", "valid_until": "2026-12-01T00:00:00Z",
        "network_code": "SWAP-NETWORK-TG-LOME", "battery_family": "MOBBAT-45AH",
        "swap_quota": 60, "swaps_used": 12, "energy_quota_kwh": 129.6, "energy_used_kwh": 25.92,
        "overage_allowed": false, "max_batteries": 1, "batteries_out": ["B45-\(String(format: "%06d", n))"],
        "version": 17,
    ]
    return merged(base, changes)
}

/// `record` without `field`.
func record(_ n: Int = 123, without field: String) -> [String: Any] {
    var r = record(n)
    r.removeValue(forKey: field)
    return r
}

extension Result where Success == VerifiedCommand, Failure == CommandRefusal {
    var command: VerifiedCommand? {
        if case .success(let c) = self { return c }
        return nil
    }

    var refusal: CommandRefusal? {
        if case .failure(let r) = self { return r }
        return nil
    }
}

/// Expects a refusal with `code` whose message contains every string in `mentions`.
func expectRefused(_ result: Result<VerifiedCommand, CommandRefusal>, _ code: ReplyCode, mentioning mentions: String...,
                   sourceLocation: SourceLocation = #_sourceLocation) {
    guard let refusal = result.refusal else {
        Issue.record("expected a \(code.rawValue) refusal, got \(String(describing: result.command))", sourceLocation: sourceLocation)
        return
    }
    #expect(refusal.code == code, "message: \(refusal.message)", sourceLocation: sourceLocation)
    for m in mentions {
        #expect(refusal.message.contains(m), "\(refusal.message.debugDescription) should mention \(m.debugDescription)",
                sourceLocation: sourceLocation)
    }
}

/// Small deterministic PRNG (SplitMix64), so a failing random test can be replayed from its seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The package root (for tools/abs_sign.py).
let packageRoot: URL = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
