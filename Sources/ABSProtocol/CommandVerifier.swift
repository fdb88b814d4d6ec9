#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

/// Checks one command from ABS, from the raw MQTT message to a typed command. Pure: no I/O, no
/// clock (`now` is given). Replay (a request_id already seen) is the caller's check, made durably
/// after verification.
///
/// Order (docs/commands.md): retained → command name → size → envelope JSON → enc known → kid known →
/// Ed25519 over the exact decoded payload bytes → inflate (`enc: deflate`, bounded) → command JSON → request_id, v, command,
/// station_id → issued_at/expires_at well-formed → not expired → not issued beyond the clock skew
/// in the future → lifetime sane → body fields typed and in range.
/// What a command's times are judged against (contract 1.1 "Time").
public enum CommandTime: Sendable, Equatable {
    /// The station's clock is trusted (synchronised): expiry and issued_at skew against it.
    case trusted(Date)
    /// The clock is not trusted: expiry against the time base taken from signed commands (nil: none yet, the
    /// command's own issued_at is the base); issued_at ahead of the base is accepted (it moves the base).
    case signedBase(Date?)
}

public struct CommandVerifier: Sendable {
    public let keys: KeyRing
    public let policy: CommandPolicy

    public init(keys: KeyRing, policy: CommandPolicy) {
        self.keys = keys
        self.policy = policy
    }

    /// `command`: the last level of the topic `cmd/V01/BSS/{sid}/<name>`; `payload`: the MQTT
    /// payload bytes as received; `retained`: the message's retain flag.
    public func verify(command: String, payload: [UInt8], retained: Bool, now: Date) -> Result<VerifiedCommand, CommandRefusal> {
        verify(command: command, payload: payload, retained: retained, time: .trusted(now))
    }

    /// `time`: the station's clock when it is trusted, or the time base taken from signed commands while it
    /// is not (contract 1.1 "Time"; docs/commands.md "Time").
    public func verify(command: String, payload: [UInt8], retained: Bool, time: CommandTime) -> Result<VerifiedCommand, CommandRefusal> {
        do {
            return .success(try verifyOrThrow(command: command, payload: payload, retained: retained, time: time))
        } catch {
            return .failure(error)
        }
    }

    private func verifyOrThrow(command: String, payload: [UInt8], retained: Bool, time: CommandTime) throws(CommandRefusal) -> VerifiedCommand {
        guard !retained else {
            throw malformed("a retained command is refused (commands are never retained)")
        }
        guard let name = CommandName(rawValue: command) else {
            throw malformed("unknown command \(Validation.quote(command)) (known: \(CommandName.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard payload.count <= policy.maxPayloadBytes else {
            throw malformed("payload of \(payload.count) bytes exceeds the limit of \(policy.maxPayloadBytes)")
        }

        // The envelope, its signature, and the exact command bytes.
        let (commandBytes, kid) = try openEnvelope(payload)

        // The command JSON.
        let parsed: ParsedCommand
        do {
            switch commandBytes {
            case .plain(let bytes):
                parsed = try bytes.withUnsafeBufferPointer { buf throws(JSONSyntaxError) in try ParsedCommand.parse(buf, name: name) }
            case .inflated(let bytes):
                parsed = try bytes.withBuffer { buf throws(JSONSyntaxError) in try ParsedCommand.parse(buf, name: name) }
            }
        } catch {
            throw malformed(error.message)
        }

        let header = try checkHeader(parsed, name: name, kid: kid, time: time)
        let body: CommandBody
        do {
            body = try checkBody(parsed, name: name)
        } catch {
            throw CommandRefusal(code: .malformed, message: error.message, requestID: header.requestID)
        }
        return VerifiedCommand(header: header, body: body, signed: kid != nil)
    }

    // MARK: Envelope

    /// The command bytes and the kid that signed them (nil: unsigned, allowed by the policy).
    /// The command JSON: as received, or inflated (`enc: deflate`) into its own buffer.
    private enum CommandBytes {
        case plain([UInt8])
        case inflated(InflatedBytes)
    }

    private func openEnvelope(_ payload: [UInt8]) throws(CommandRefusal) -> (CommandBytes, String?) {
        let envelope: Envelope
        do {
            envelope = try payload.withUnsafeBufferPointer { buf throws(JSONSyntaxError) in try Envelope.read(buf) }
        } catch {
            throw malformed(error.message)
        }
        guard envelope.isEnvelope else {
            guard policy.allowUnsigned else {
                throw CommandRefusal(code: .badSignature, message: "unsigned command refused: the payload is not a signed envelope {kid, payload, sig}")
            }
            return (.plain(payload), nil)
        }
        // `enc` (contract 1.1): absent = the payload is the command JSON; "deflate" = raw DEFLATE of it,
        // signed compressed and inflated only once the signature verified. Anything else: malformed.
        let deflated: Bool
        switch envelope.enc {
        case .absent: deflated = false
        case .value("deflate"): deflated = true
        case .value(let other): throw malformed("unknown enc \(Validation.quote(other)) (known: deflate)")
        case .null, .wrongType: throw malformed("the envelope's enc must be the string \"deflate\"")
        }
        guard case .value(let decodedPayload) = envelope.payload else {
            throw malformed(envelope.payload.isAbsent ? "the envelope has no payload" : "the envelope's payload must be a base64 string")
        }
        switch envelope.sig {
        case .absent, .null:
            guard policy.allowUnsigned else {
                throw CommandRefusal(code: .badSignature, message: "unsigned command refused: the envelope has no sig")
            }
            guard let bytes = decodedPayload else { throw malformed("the envelope's payload is not base64") }
            return (deflated ? .inflated(try inflate(bytes)) : .plain(bytes), nil)
        case .wrongType:
            throw malformed("the envelope's sig must be a base64 string")
        case .value(let decodedSig):
            let kid: String
            switch envelope.kid {
            case .value(let k): kid = k
            case .absent, .null: throw malformed("the envelope has a sig but no kid")
            case .wrongType: throw malformed("the envelope's kid must be a string")
            }
            guard let key = keys.publicKey(kid: kid) else {
                throw CommandRefusal(code: .badSignature, message: "unknown kid \(Validation.quote(kid))")
            }
            guard let signature = decodedSig else { throw malformed("the envelope's sig is not base64") }
            guard let bytes = decodedPayload else { throw malformed("the envelope's payload is not base64") }
            guard signature.count == 64 else {
                throw CommandRefusal(code: .badSignature, message: "the signature is \(signature.count) bytes, an Ed25519 signature is 64")
            }
            guard key.isValidSignature(signature, for: bytes) else {
                throw CommandRefusal(code: .badSignature, message: "the signature does not verify with key \(Validation.quote(kid))")
            }
            return (deflated ? .inflated(try inflate(bytes)) : .plain(bytes), kid)
        }
    }

    /// The command JSON of an `enc: deflate` payload (already verified), inflated up to the policy's limit.
    private func inflate(_ compressed: [UInt8]) throws(CommandRefusal) -> InflatedBytes {
        do {
            return try Inflater.inflateRaw(compressed, limit: policy.maxInflatedBytes)
        } catch {
            throw malformed("enc deflate: \(error.message)")
        }
    }

    // MARK: Header

    private func checkHeader(_ c: ParsedCommand, name: CommandName, kid: String?, time judgedAgainst: CommandTime) throws(CommandRefusal) -> CommandHeader {
        let requestID: String
        switch c.requestID {
        case .absent: throw malformed("missing request_id")
        case .null, .wrongType: throw malformed("request_id must be a string")
        case .value(let id):
            guard Validation.isPrintableASCII(id, maxLength: CommandLimits.maxRequestIDLength) else {
                throw malformed("request_id must be 1…\(CommandLimits.maxRequestIDLength) printable ASCII characters")
            }
            requestID = id
        }
        func refuse(_ code: ReplyCode, _ message: String) -> CommandRefusal {
            CommandRefusal(code: code, message: message, requestID: requestID)
        }

        switch c.v {
        case .absent, .value(1): break
        case .value(let v): throw refuse(.malformed, "unsupported contract version v=\(v) (this station speaks v=1)")
        case .null, .wrongType: throw refuse(.malformed, "v must be the integer 1")
        }
        switch c.command {
        case .absent: break
        case .value(let n) where n == name.rawValue: break
        case .value(let n):
            throw refuse(.malformed, "the payload is a \(Validation.quote(n)) command but came on the \(name.rawValue) topic")
        case .null, .wrongType: throw refuse(.malformed, "command must be a string")
        }
        switch c.stationID {
        case .absent: break
        case .value(let sid):
            if let mine = policy.stationID, sid != mine {
                throw refuse(.malformed, "the command is for station \(Validation.quote(sid)), this is \(Validation.quote(mine))")
            }
        case .null, .wrongType: throw refuse(.malformed, "station_id must be a string")
        }

        func time(_ field: Field<String>, _ key: String) throws(CommandRefusal) -> Date {
            switch field {
            case .absent: throw refuse(.malformed, "missing \(key)")
            case .null, .wrongType: throw refuse(.malformed, "\(key) must be an RFC 3339 string")
            case .value(let s):
                guard let d = RFC3339.parse(s) else {
                    throw refuse(.malformed, "\(key) is not an RFC 3339 time (got \(Validation.quote(s)))")
                }
                return d
            }
        }
        let issuedAt = try time(c.issuedAt, "issued_at")
        let expiresAt = try time(c.expiresAt, "expires_at")

        // Trusted clock: expiry and skew against it. Signed time base (the clock is not trusted): expiry against
        // the base (none yet: this command's issued_at becomes it); an issued_at ahead of the base is no skew but
        // the newer time, which moves the base forward once the command is accepted (the signature verified above).
        let now: Date
        let checkSkew: Bool
        let source: String
        switch judgedAgainst {
        case .trusted(let d): (now, checkSkew, source) = (d, true, "station time")
        case .signedBase(let base?): (now, checkSkew, source) = (base, false, "signed time base")
        case .signedBase(nil): (now, checkSkew, source) = (issuedAt, false, "signed time base, from this command")
        }
        guard now < expiresAt else {
            throw refuse(.expired, "expired at \(RFC3339.format(expiresAt)) (\(source) \(RFC3339.format(now)))")
        }
        let ahead = issuedAt.timeIntervalSince(now)
        guard !checkSkew || ahead <= policy.maxClockSkew else {
            throw refuse(.expired, "issued_at \(RFC3339.format(issuedAt)) is \(Int(ahead.rounded())) s in the future of the station's clock (\(RFC3339.format(now))), beyond the allowed clock skew of \(formatSeconds(policy.maxClockSkew)) s")
        }
        let lifetime = expiresAt.timeIntervalSince(issuedAt)
        guard lifetime > 0 else { throw refuse(.malformed, "expires_at must be after issued_at") }
        guard lifetime <= policy.maxLifetime else {
            throw refuse(.malformed, "lifetime of \(formatSeconds(lifetime)) s (expires_at − issued_at) exceeds the maximum of \(formatSeconds(policy.maxLifetime)) s")
        }
        return CommandHeader(requestID: requestID, issuedAt: issuedAt, expiresAt: expiresAt, kid: kid)
    }

    // MARK: Body

    private struct BodyProblem: Error {
        let message: String
    }

    private func checkBody(_ c: ParsedCommand, name: CommandName) throws(BodyProblem) -> CommandBody {
        switch name {
        case .ping:
            return .ping
        case .rebirth:
            return .rebirth
        case .swap:
            let customerID = try requiredID(c.customerID, "customer_id")
            let planInstanceID = try optionalID(c.planInstanceID, "plan_instance_id")
            let channel = try optionalID(c.channel, "channel")
            return .swap(customerID: customerID, planInstanceID: planInstanceID, channel: channel)
        case .unlock:
            let slot = try slotNumber(c.slot)
            let operatorID = try requiredID(c.operatorID, "operator_id")
            let reason = try requiredID(c.reason, "reason", maxBytes: CommandLimits.maxTextBytes)
            return .unlock(slot: slot, operatorID: operatorID, reason: reason)
        case .slot:
            let slot = try slotNumber(c.slot)
            guard case .value(let inService) = c.inService else {
                throw BodyProblem(message: c.inService.isAbsent ? "missing in_service" : "in_service must be true or false")
            }
            return .slot(slot: slot, inService: inService)
        case .entitlements:
            return try entitlementsBody(c)
        }
    }

    private func requiredID(_ field: Field<String>, _ key: String, maxBytes: Int = CommandLimits.maxIDBytes) throws(BodyProblem) -> String {
        switch field {
        case .absent: throw BodyProblem(message: "missing \(key)")
        case .null, .wrongType: throw BodyProblem(message: "\(key) must be a string")
        case .value(let s):
            if let p = Validation.idProblem(s, maxBytes: maxBytes) { throw BodyProblem(message: "\(key) \(p)") }
            return s
        }
    }

    /// Absent and null both mean "not given".
    private func optionalID(_ field: Field<String>, _ key: String) throws(BodyProblem) -> String? {
        switch field {
        case .absent, .null: return nil
        case .wrongType: throw BodyProblem(message: "\(key) must be a string")
        case .value(let s):
            if let p = Validation.idProblem(s) { throw BodyProblem(message: "\(key) \(p)") }
            return s
        }
    }

    private func slotNumber(_ field: Field<Int64>) throws(BodyProblem) -> Int {
        let range = CommandLimits.slots
        switch field {
        case .absent: throw BodyProblem(message: "missing slot")
        case .value(let v) where v >= Int64(range.lowerBound) && v <= Int64(range.upperBound): return Int(v)
        case .value(let v): throw BodyProblem(message: "slot \(v) is out of range \(range.lowerBound)…\(range.upperBound)")
        case .null, .wrongType: throw BodyProblem(message: "slot must be an integer in \(range.lowerBound)…\(range.upperBound)")
        }
    }

    private func version(_ field: Field<Int64>, _ key: String) throws(BodyProblem) -> Int64 {
        switch field {
        case .absent: throw BodyProblem(message: "missing \(key)")
        case .value(let v) where v >= 0: return v
        case .value(let v): throw BodyProblem(message: "\(key) must be ≥ 0 (got \(v))")
        case .null, .wrongType: throw BodyProblem(message: "\(key) must be an integer ≥ 0")
        }
    }

    private func entitlementsBody(_ c: ParsedCommand) throws(BodyProblem) -> CommandBody {
        let kind: String
        switch c.kind {
        case .absent: throw BodyProblem(message: "missing kind (\"snapshot\" or \"delta\")")
        case .null, .wrongType: throw BodyProblem(message: "kind must be \"snapshot\" or \"delta\"")
        case .value(let k): kind = k
        }
        func records(_ field: Field<[Entitlement]>, _ key: String) throws(BodyProblem) -> [Entitlement] {
            switch field {
            case .absent: throw BodyProblem(message: "missing \(key)")
            case .null, .wrongType: throw BodyProblem(message: "\(key) must be an array of entitlement records")
            case .value(let list): return list
            }
        }
        func mustBeAbsent(_ present: Bool, _ key: String) throws(BodyProblem) {
            if present { throw BodyProblem(message: "a \(kind) must not carry \(key)") }
        }
        // Contract 1.1: optional; when present, an integer ≥ 0.
        let countedThroughSeq: Int64?
        switch c.countedThroughSeq {
        case .absent: countedThroughSeq = nil
        case .value(let v) where v >= 0: countedThroughSeq = v
        case .value(let v): throw BodyProblem(message: "counted_through_seq must be ≥ 0 (got \(v))")
        case .null, .wrongType: throw BodyProblem(message: "counted_through_seq must be an integer ≥ 0")
        }
        switch kind {
        case "snapshot":
            try mustBeAbsent(!c.baseVersion.isAbsent, "base_version")
            try mustBeAbsent(!c.upsert.isAbsent, "upsert")
            try mustBeAbsent(!c.remove.isAbsent, "remove")
            let version = try version(c.version, "version")
            let list = try records(c.entitlements, "entitlements")
            if let issue = c.elementIssue { throw BodyProblem(message: issue) }
            try checkUnique(list, "entitlements")
            if !c.snapshotID.isAbsent || !c.part.isAbsent || !c.parts.isAbsent {
                // A snapshot in parts: all three fields, part within 1…parts.
                let snapshotID = try requiredID(c.snapshotID, "snapshot_id")
                let maxParts = CommandLimits.maxSnapshotParts
                let parts: Int
                switch c.parts {
                case .absent: throw BodyProblem(message: "missing parts (a snapshot part carries snapshot_id, part and parts)")
                case .value(let p) where p >= 1 && p <= Int64(maxParts): parts = Int(p)
                case .value(let p): throw BodyProblem(message: "parts \(p) is out of range 1…\(maxParts)")
                case .null, .wrongType: throw BodyProblem(message: "parts must be an integer in 1…\(maxParts)")
                }
                let part: Int
                switch c.part {
                case .absent: throw BodyProblem(message: "missing part (a snapshot part carries snapshot_id, part and parts)")
                case .value(let p) where p >= 1 && p <= Int64(parts): part = Int(p)
                case .value(let p): throw BodyProblem(message: "part \(p) is out of range 1…\(parts)")
                case .null, .wrongType: throw BodyProblem(message: "part must be an integer in 1…\(parts)")
                }
                return .entitlementSnapshotPart(EntitlementSnapshotPart(
                    snapshotID: snapshotID, part: part, parts: parts, version: version,
                    countedThroughSeq: countedThroughSeq, entitlements: list))
            }
            return .entitlementSnapshot(version: version, entitlements: list, countedThroughSeq: countedThroughSeq)
        case "delta":
            try mustBeAbsent(!c.entitlements.isAbsent, "entitlements")
            try mustBeAbsent(!c.snapshotID.isAbsent, "snapshot_id")
            try mustBeAbsent(!c.part.isAbsent, "part")
            try mustBeAbsent(!c.parts.isAbsent, "parts")
            let base = try version(c.baseVersion, "base_version")
            let version = try version(c.version, "version")
            guard version > base else {
                throw BodyProblem(message: "version \(version) must be greater than base_version \(base)")
            }
            let upsert = try records(c.upsert, "upsert")
            let remove: [String]
            switch c.remove {
            case .absent: throw BodyProblem(message: "missing remove")
            case .null, .wrongType: throw BodyProblem(message: "remove must be an array of plan_instance_id strings")
            case .value(let list): remove = list
            }
            if let issue = c.elementIssue { throw BodyProblem(message: issue) }
            let upserted = try checkUnique(upsert, "upsert")
            var removed = Set<String>()
            for (i, id) in remove.enumerated() {
                if let p = Validation.idProblem(id) { throw BodyProblem(message: "remove[\(i)] \(p)") }
                guard removed.insert(id).inserted else {
                    throw BodyProblem(message: "remove[\(i)] lists \(Validation.quote(id)) twice")
                }
                if let j = upserted[id] {
                    throw BodyProblem(message: "remove[\(i)] (\(Validation.quote(id))) is also upsert[\(j)]")
                }
            }
            return .entitlementDelta(baseVersion: base, version: version, upsert: upsert, remove: remove,
                                     countedThroughSeq: countedThroughSeq)
        default:
            throw BodyProblem(message: "kind must be \"snapshot\" or \"delta\" (got \(Validation.quote(kind)))")
        }
    }

    /// plan_instance_id → index; throws on a duplicate.
    @discardableResult
    private func checkUnique(_ list: [Entitlement], _ key: String) throws(BodyProblem) -> [String: Int] {
        var index = [String: Int](minimumCapacity: list.count)
        for (i, e) in list.enumerated() {
            if let j = index.updateValue(i, forKey: e.planInstanceID) {
                throw BodyProblem(message: "\(key)[\(i)] (plan_instance_id \(Validation.quote(e.planInstanceID))) duplicates \(key)[\(j)]")
            }
        }
        return index
    }

    private func malformed(_ message: String) -> CommandRefusal {
        CommandRefusal(code: .malformed, message: message, requestID: nil)
    }

    private func formatSeconds(_ s: Double) -> String {
        s.rounded() == s && abs(s) < 1e15 ? String(Int64(s)) : String(s)
    }
}

/// The outer object of an MQTT command payload. payload and sig are base64-decoded as they are
/// read (nil inside `.value`: not base64); problems are reported by the verifier in its order.
private struct Envelope {
    var kid: Field<String> = .absent
    var payload: Field<[UInt8]?> = .absent
    var sig: Field<[UInt8]?> = .absent
    var enc: Field<String> = .absent

    /// True when the object has any of kid, payload, sig; otherwise it is a bare command.
    var isEnvelope: Bool { !kid.isAbsent || !payload.isAbsent || !sig.isAbsent }

    static func read(_ buf: UnsafeBufferPointer<UInt8>) throws(JSONSyntaxError) -> Envelope {
        var r = JSONReader(buf)
        guard try r.peekKind() == .object else { throw JSONSyntaxError(message: "the payload is not a JSON object") }
        try r.beginObject()
        var e = Envelope()
        var first = true
        while let key = try r.nextKey(first: &first) {
            switch key {
            case "kid":
                guard e.kid.isAbsent else { throw JSONSyntaxError(message: "the envelope has kid twice") }
                e.kid = try r.stringField()
            case "payload":
                guard e.payload.isAbsent else { throw JSONSyntaxError(message: "the envelope has payload twice") }
                e.payload = try r.base64Field()
            case "sig":
                guard e.sig.isAbsent else { throw JSONSyntaxError(message: "the envelope has sig twice") }
                e.sig = try r.base64Field()
            case "enc":
                guard e.enc.isAbsent else { throw JSONSyntaxError(message: "the envelope has enc twice") }
                e.enc = try r.stringField()
            default:
                try r.skipValue()
            }
        }
        try r.finish()
        return e
    }
}

private extension JSONReader {
    mutating func base64Field() throws(JSONSyntaxError) -> Field<[UInt8]?> {
        if try consumeNull() { return .null }
        if let decoded = try withStringBytesOrSkip({ Base64.decode($0) }) { return .value(decoded) }
        return .wrongType
    }
}
