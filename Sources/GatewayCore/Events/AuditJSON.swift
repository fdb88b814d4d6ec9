import ABSProtocol
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// RFC 3339: StationSupport's `RFC3339` is the project's one formatter and parser.
// Everything published to ABS is a type of ABSProtocol/Contract, written by ContractJSON; the control API's JSON
// coders are ControlProtocol's `ControlJSON`.

/// The members of an audit line's `detail` (the local audit log, not the ABS contract): `["slot": 3, "why": "…"]`.
public typealias JSONObject = [String: any Encodable & Sendable]

public enum JSON {
    /// The object's JSON with sorted keys, written by the contract's one writer (ContractJSON).
    public static func encode(_ object: JSONObject) -> [UInt8] { ContractJSON.encode(Members(members: object)) }

    struct Members: Encodable {
        let members: JSONObject
        func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: ContractKey.self)
            for (k, v) in members { try c.encode(v, forKey: ContractKey(k)) }
        }
    }
}
