#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import StationDomain

// One pass over a command's JSON. Syntax errors (and duplicate keys) throw at once; a field of
// the wrong type or a bad entitlement record is remembered, so the verifier can check the header
// (request_id, times) before it reports on the body, in the order the contract fixes.

/// What the parser found for one field.
enum Field<T> {
    case absent
    case null
    case wrongType
    case value(T)

    var isAbsent: Bool {
        if case .absent = self { return true }
        return false
    }
}

/// The fields of a command payload as read, not yet validated.
struct ParsedCommand {
    var requestID: Field<String> = .absent
    var v: Field<Int64> = .absent
    var command: Field<String> = .absent
    var stationID: Field<String> = .absent
    var issuedAt: Field<String> = .absent
    var expiresAt: Field<String> = .absent
    // swap
    var customerID: Field<String> = .absent
    var planInstanceID: Field<String> = .absent
    var channel: Field<String> = .absent
    // unlock, slot
    var slot: Field<Int64> = .absent
    var operatorID: Field<String> = .absent
    var reason: Field<String> = .absent
    var inService: Field<Bool> = .absent
    // entitlements
    var kind: Field<String> = .absent
    var version: Field<Int64> = .absent
    var baseVersion: Field<Int64> = .absent
    var entitlements: Field<[Entitlement]> = .absent
    var upsert: Field<[Entitlement]> = .absent
    var remove: Field<[String]> = .absent
    /// Contract 1.1, optional (snapshot and delta).
    var countedThroughSeq: Field<Int64> = .absent
    /// Contract 1.1, a snapshot in parts: all three or none.
    var snapshotID: Field<String> = .absent
    var part: Field<Int64> = .absent
    var parts: Field<Int64> = .absent
    /// The first problem inside an element of `entitlements`, `upsert` or `remove`, with its path.
    var elementIssue: String?

    /// Parses `bytes` (the exact command JSON) for the command `name`. Keys that `name` does not
    /// use are skipped (their syntax is still checked).
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, name: CommandName) throws(JSONSyntaxError) -> ParsedCommand {
        var r = JSONReader(bytes)
        var c = ParsedCommand()
        guard try r.peekKind() == .object else { throw JSONSyntaxError(message: "the command is not a JSON object") }
        try r.beginObject()
        var seen = Set<String>()
        var first = true
        while let key = try r.nextKey(first: &first) {
            let known = try c.read(key: key, name: name, from: &r)
            if !known { continue }
            if !seen.insert(key).inserted {
                throw JSONSyntaxError(message: "the command has the key \(Validation.quote(key)) twice")
            }
        }
        try r.finish()
        return c
    }

    /// Reads the value of `key` if `name` uses it; otherwise skips it. Returns whether it was used.
    private mutating func read(key: String, name: CommandName, from r: inout JSONReader) throws(JSONSyntaxError) -> Bool {
        switch (key, name) {
        case ("request_id", _): requestID = try r.stringField()
        case ("v", _): v = try r.int64Field()
        case ("command", _): command = try r.stringField()
        case ("station_id", _): stationID = try r.stringField()
        case ("issued_at", _): issuedAt = try r.stringField()
        case ("expires_at", _): expiresAt = try r.stringField()
        case ("customer_id", .swap): customerID = try r.stringField()
        case ("plan_instance_id", .swap): planInstanceID = try r.stringField()
        case ("channel", .swap): channel = try r.stringField()
        case ("slot", .unlock), ("slot", .slot): slot = try r.int64Field()
        case ("operator_id", .unlock): operatorID = try r.stringField()
        case ("reason", .unlock): reason = try r.stringField()
        case ("in_service", .slot): inService = try r.boolField()
        case ("kind", .entitlements): kind = try r.stringField()
        case ("version", .entitlements): version = try r.int64Field()
        case ("base_version", .entitlements): baseVersion = try r.int64Field()
        case ("entitlements", .entitlements):
            entitlements = try r.entitlementArray(path: "entitlements", issue: &elementIssue)
        case ("upsert", .entitlements):
            upsert = try r.entitlementArray(path: "upsert", issue: &elementIssue)
        case ("remove", .entitlements):
            remove = try r.stringArray(path: "remove", issue: &elementIssue)
        case ("counted_through_seq", .entitlements): countedThroughSeq = try r.int64Field()
        case ("snapshot_id", .entitlements): snapshotID = try r.stringField()
        case ("part", .entitlements): part = try r.int64Field()
        case ("parts", .entitlements): parts = try r.int64Field()
        default:
            try r.skipValue()
            return false
        }
        return true
    }
}

extension JSONReader {
    mutating func stringField() throws(JSONSyntaxError) -> Field<String> {
        if try consumeNull() { return .null }
        if let s = try stringOrSkip() { return .value(s) }
        return .wrongType
    }

    mutating func int64Field() throws(JSONSyntaxError) -> Field<Int64> {
        if try consumeNull() { return .null }
        if let v = try int64OrSkip() { return .value(v) }
        return .wrongType
    }

    mutating func boolField() throws(JSONSyntaxError) -> Field<Bool> {
        if try consumeNull() { return .null }
        if let v = try boolOrSkip() { return .value(v) }
        return .wrongType
    }

    /// An array of strings; an element that is not a string is noted in `issue` (first one only).
    mutating func stringArray(path: String, issue: inout String?) throws(JSONSyntaxError) -> Field<[String]> {
        if try consumeNull() { return .null }
        guard try peekKind() == .array else { try skipValue(); return .wrongType }
        try beginArray()
        var out: [String] = []
        var first = true
        var index = 0
        while try nextElement(first: &first) {
            if let s = try stringOrSkip() {
                out.append(s)
            } else if issue == nil {
                issue = "\(path)[\(index)] must be a string"
            }
            index += 1
        }
        return .value(out)
    }

    /// An array of entitlement records. After the first bad record (noted in `issue`), the rest
    /// are only skipped.
    mutating func entitlementArray(path: String, issue: inout String?) throws(JSONSyntaxError) -> Field<[Entitlement]> {
        if try consumeNull() { return .null }
        guard try peekKind() == .array else { try skipValue(); return .wrongType }
        try beginArray()
        var out: [Entitlement] = []
        var first = true
        var index = 0
        while try nextElement(first: &first) {
            if issue != nil {
                try skipValue()
            } else {
                switch try entitlement() {
                case .success(let e): out.append(e)
                case .failure(let problem): issue = problem.message(path: path, index: index)
                }
            }
            index += 1
        }
        return .value(out)
    }

    /// One entitlement record (entitlements.md "The record"), every field required and checked.
    mutating func entitlement() throws(JSONSyntaxError) -> Result<Entitlement, RecordProblem> {
        guard try peekKind() == .object else {
            try skipValue()
            return .failure(RecordProblem(planInstanceID: nil, field: nil, reason: "must be an object"))
        }
        try beginObject()
        var planInstanceID: String?, customerID: String?, subscriptionRef: String?, status: String?
        var validFrom: String?, validUntil: String?, networkCode: String?, batteryFamily: String?
        var swapQuota: Int64?, swapsUsed: Int64?, maxBatteries: Int64?, version: Int64?
        var energyQuota: Double?, energyUsed: Double?
        var overageAllowed: Bool?
        var batteriesOut: [String]?
        var problem: (field: String, reason: String)?
        var seen: UInt32 = 0
        var first = true
        while let key = try nextKey(first: &first) {
            guard let field = RecordField.byKey[key] else {
                try skipValue()
                continue
            }
            if seen & field.bit != 0 {
                if problem == nil { problem = (key, "appears twice") }
                try skipValue()
                continue
            }
            seen |= field.bit
            var ok = true
            switch field {
            case .planInstanceID: planInstanceID = try stringOrSkip(); ok = planInstanceID != nil
            case .customerID: customerID = try stringOrSkip(); ok = customerID != nil
            case .subscriptionRef: subscriptionRef = try stringOrSkip(); ok = subscriptionRef != nil
            case .status: status = try stringOrSkip(); ok = status != nil
            case .validFrom: validFrom = try stringOrSkip(); ok = validFrom != nil
            case .validUntil: validUntil = try stringOrSkip(); ok = validUntil != nil
            case .networkCode: networkCode = try stringOrSkip(); ok = networkCode != nil
            case .batteryFamily: batteryFamily = try stringOrSkip(); ok = batteryFamily != nil
            case .swapQuota: swapQuota = try int64OrSkip(); ok = swapQuota != nil
            case .swapsUsed: swapsUsed = try int64OrSkip(); ok = swapsUsed != nil
            case .maxBatteries: maxBatteries = try int64OrSkip(); ok = maxBatteries != nil
            case .version: version = try int64OrSkip(); ok = version != nil
            case .energyQuotaKWh: energyQuota = try doubleOrSkip(); ok = energyQuota != nil
            case .energyUsedKWh: energyUsed = try doubleOrSkip(); ok = energyUsed != nil
            case .overageAllowed: overageAllowed = try boolOrSkip(); ok = overageAllowed != nil
            case .batteriesOut:
                var elementProblem: String?
                if case .value(let list) = try stringArray(path: "batteries_out", issue: &elementProblem) {
                    batteriesOut = list
                    if let elementProblem, problem == nil { problem = (elementProblem, "") }
                } else {
                    ok = false
                }
            }
            if !ok && problem == nil { problem = (key, "must be \(field.expected)") }
        }
        if problem == nil, let missing = RecordField.allCases.first(where: { seen & $0.bit == 0 }) {
            problem = (missing.key, "is missing")
        }
        func fail(_ field: String, _ reason: String) -> Result<Entitlement, RecordProblem> {
            .failure(RecordProblem(planInstanceID: planInstanceID, field: field, reason: reason))
        }
        if let problem { return fail(problem.field, problem.reason) }
        guard let planInstanceID, let customerID, let subscriptionRef, let status, let validFrom, let validUntil,
              let networkCode, let batteryFamily, let swapQuota, let swapsUsed, let maxBatteries, let version,
              let energyQuota, let energyUsed, let overageAllowed, let batteriesOut
        else { return fail("?", "is missing") }  // unreachable: every field was seen with its type

        for (name, value) in [("plan_instance_id", planInstanceID), ("customer_id", customerID),
                              ("subscription_ref", subscriptionRef), ("network_code", networkCode),
                              ("battery_family", batteryFamily)] {
            if let p = Validation.idProblem(value) { return fail(name, p) }
        }
        guard let parsedStatus = Entitlement.Status(rawValue: status) else {
            return fail("status", "must be active, restricted or inactive (got \(Validation.quote(status)))")
        }
        guard let from = RFC3339.parse(validFrom) else {
            return fail("valid_from", "is not an RFC 3339 time (got \(Validation.quote(validFrom)))")
        }
        guard let until = RFC3339.parse(validUntil) else {
            return fail("valid_until", "is not an RFC 3339 time (got \(Validation.quote(validUntil)))")
        }
        guard from < until else { return fail("valid_from", "must be before valid_until") }
        guard swapQuota >= -1, let quota = Int(exactly: swapQuota) else {
            return fail("swap_quota", "must be -1 (unlimited) or ≥ 0 (got \(swapQuota))")
        }
        guard swapsUsed >= 0, let used = Int(exactly: swapsUsed) else {
            return fail("swaps_used", "must be ≥ 0 (got \(swapsUsed))")
        }
        guard energyQuota == -1 || energyQuota >= 0 else {
            return fail("energy_quota_kwh", "must be -1 (unlimited) or ≥ 0 (got \(energyQuota))")
        }
        guard energyUsed >= 0 else { return fail("energy_used_kwh", "must be ≥ 0 (got \(energyUsed))") }
        guard maxBatteries >= 0, let maxOut = Int(exactly: maxBatteries) else {
            return fail("max_batteries", "must be ≥ 0 (got \(maxBatteries))")
        }
        var batteryIDs = Set<String>()
        for (k, id) in batteriesOut.enumerated() {
            if let p = Validation.idProblem(id) { return fail("batteries_out[\(k)]", p) }
            if !batteryIDs.insert(id).inserted { return fail("batteries_out", "lists \(Validation.quote(id)) twice") }
        }
        guard version >= 0 else { return fail("version", "must be ≥ 0 (got \(version))") }
        return .success(Entitlement(
            planInstanceID: planInstanceID, customerID: customerID, subscriptionRef: subscriptionRef,
            status: parsedStatus, validFrom: from, validUntil: until, networkCode: networkCode,
            batteryFamily: batteryFamily, swapQuota: quota, swapsUsed: used, energyQuotaKWh: energyQuota,
            energyUsedKWh: energyUsed, overageAllowed: overageAllowed, maxBatteries: maxOut,
            batteriesOut: batteriesOut, version: version))
    }
}

/// The keys of an entitlement record, in the order problems are reported.
enum RecordField: Int, CaseIterable {
    case planInstanceID, customerID, subscriptionRef, status, validFrom, validUntil, networkCode, batteryFamily
    case swapQuota, swapsUsed, energyQuotaKWh, energyUsedKWh, overageAllowed, maxBatteries, batteriesOut, version

    var key: String {
        switch self {
        case .planInstanceID: return "plan_instance_id"
        case .customerID: return "customer_id"
        case .subscriptionRef: return "subscription_ref"
        case .status: return "status"
        case .validFrom: return "valid_from"
        case .validUntil: return "valid_until"
        case .networkCode: return "network_code"
        case .batteryFamily: return "battery_family"
        case .swapQuota: return "swap_quota"
        case .swapsUsed: return "swaps_used"
        case .energyQuotaKWh: return "energy_quota_kwh"
        case .energyUsedKWh: return "energy_used_kwh"
        case .overageAllowed: return "overage_allowed"
        case .maxBatteries: return "max_batteries"
        case .batteriesOut: return "batteries_out"
        case .version: return "version"
        }
    }

    var bit: UInt32 { 1 << UInt32(rawValue) }

    static let byKey: [String: RecordField] = Dictionary(uniqueKeysWithValues: allCases.map { ($0.key, $0) })

    var expected: String {
        switch self {
        case .swapQuota, .swapsUsed, .maxBatteries, .version: return "an integer"
        case .energyQuotaKWh, .energyUsedKWh: return "a number"
        case .overageAllowed: return "true or false"
        case .batteriesOut: return "an array of strings"
        default: return "a string"
        }
    }
}

/// What is wrong with one record; rendered with the record's index (and id when known).
struct RecordProblem: Error {
    let planInstanceID: String?
    let field: String?
    let reason: String

    func message(path: String, index: Int) -> String {
        var s = "\(path)[\(index)]"
        if let planInstanceID { s += " (plan_instance_id \(Validation.quote(planInstanceID)))" }
        if let field { s += ": \(field)" }
        if !reason.isEmpty { s += " \(reason)" }
        return s
    }
}
