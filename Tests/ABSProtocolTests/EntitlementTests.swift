import ABSProtocol
import Foundation
import StationDomain
import Testing

@Suite struct EntitlementTests {
    let key = ABSKey()

    func verify(_ body: [String: Any]) throws -> Result<VerifiedCommand, CommandRefusal> {
        try key.verifier().verify(command: "entitlements", payload: try key.envelope(json(merged(header(), body))),
                                  retained: false, now: testNow)
    }

    func snapshot(_ records: [[String: Any]], version: Any = 5120) -> [String: Any] {
        ["kind": "snapshot", "version": version, "entitlements": records]
    }

    func delta(_ upsert: [[String: Any]], remove: [Any] = [], base: Any = 5120, version: Any = 5121) -> [String: Any] {
        ["kind": "delta", "base_version": base, "version": version, "upsert": upsert, "remove": remove]
    }

    @Test func validSnapshotDecodesEveryField() throws {
        let result = try verify(snapshot([record(123), record(124, ["status": "restricted", "swap_quota": -1,
                                                                     "energy_quota_kwh": -1, "batteries_out": [],
                                                                     "overage_allowed": true, "max_batteries": 0])]))
        guard case .entitlementSnapshot(let version, let list, _)? = result.command?.body else {
            Issue.record("not a snapshot: \(String(describing: result.refusal))")
            return
        }
        #expect(version == 5120)
        #expect(list.count == 2)
        let expected = Entitlement(
            planInstanceID: "pi-000123", customerID: "cust-123", subscriptionRef: "SUB/2026/00123", status: .active,
            validFrom: ISO8601DateFormatter().date(from: "2026-11-01T00:00:00Z")!,
            validUntil: ISO8601DateFormatter().date(from: "2026-12-01T00:00:00Z")!,
            networkCode: "SWAP-NETWORK-TG-LOME", batteryFamily: "MOBBAT-45AH", swapQuota: 60, swapsUsed: 12,
            energyQuotaKWh: 129.6, energyUsedKWh: 25.92, overageAllowed: false, maxBatteries: 1,
            batteriesOut: ["B45-000123"], version: 17)
        #expect(list[0] == expected)
        #expect(list[1].status == .restricted)
        #expect(list[1].swapQuota == -1)
        #expect(list[1].energyQuotaKWh == -1)
        #expect(list[1].batteriesOut.isEmpty)
        #expect(list[1].overageAllowed)
        #expect(list[1].maxBatteries == 0)
    }

    @Test func emptySnapshotIsValid() throws {
        #expect(try verify(snapshot([])).command?.body == .entitlementSnapshot(version: 5120, entitlements: [], countedThroughSeq: nil))
    }

    @Test func validDelta() throws {
        let result = try verify(delta([record(7)], remove: ["pi-000044"]))
        guard case .entitlementDelta(let base, let version, let upsert, let remove, _)? = result.command?.body else {
            Issue.record("not a delta: \(String(describing: result.refusal))")
            return
        }
        #expect(base == 5120)
        #expect(version == 5121)
        #expect(upsert.map(\.planInstanceID) == ["pi-000007"])
        #expect(remove == ["pi-000044"])
        #expect(try verify(delta([], remove: [])).command != nil)
    }

    @Test func integralEnergyValuesAreAccepted() throws {
        let result = try verify(snapshot([record(1, ["energy_quota_kwh": 130, "energy_used_kwh": 0])]))
        guard case .entitlementSnapshot(_, let list, _)? = result.command?.body else {
            Issue.record("\(String(describing: result.refusal))")
            return
        }
        #expect(list.first?.energyQuotaKWh == 130)
    }

    /// Every way a record can be wrong: the whole command is malformed, and the message names the
    /// record (index and plan_instance_id) and the field.
    @Test func invalidRecordsAreNamed() throws {
        let cases: [([String: Any], String)] = [
            (["status": "suspended"], "status must be active, restricted or inactive"),
            (["status": 1], "status must be a string"),
            (["valid_from": "2026-12-01T00:00:00Z"], "valid_from must be before valid_until"),
            (["valid_until": "2026-11-01T00:00:00Z"], "valid_from must be before valid_until"),
            (["valid_from": "2026-11-01"], "valid_from is not an RFC 3339 time"),
            (["valid_until": "soon"], "valid_until is not an RFC 3339 time"),
            (["swap_quota": -2], "swap_quota must be -1 (unlimited) or ≥ 0"),
            (["swap_quota": 60.5], "swap_quota must be an integer"),
            (["swap_quota": "60"], "swap_quota must be an integer"),
            (["swaps_used": -1], "swaps_used must be ≥ 0"),
            (["energy_quota_kwh": -2], "energy_quota_kwh must be -1 (unlimited) or ≥ 0"),
            (["energy_quota_kwh": -0.5], "energy_quota_kwh must be -1 (unlimited) or ≥ 0"),
            (["energy_quota_kwh": "lots"], "energy_quota_kwh must be a number"),
            (["energy_used_kwh": -0.1], "energy_used_kwh must be ≥ 0"),
            (["max_batteries": -1], "max_batteries must be ≥ 0"),
            (["version": -1], "version must be ≥ 0"),
            (["overage_allowed": "no"], "overage_allowed must be true or false"),
            (["overage_allowed": 0], "overage_allowed must be true or false"),
            (["customer_id": ""], "customer_id must not be empty"),
            (["subscription_ref": ""], "subscription_ref must not be empty"),
            (["network_code": ""], "network_code must not be empty"),
            (["battery_family": " "], "battery_family must not be blank"),
            (["customer_id": NSNull()], "customer_id must be a string"),
            (["batteries_out": "B45-1"], "batteries_out must be an array of strings"),
            (["batteries_out": ["B45-1", 2]], "batteries_out[1] must be a string"),
            (["batteries_out": ["B45-1", ""]], "batteries_out[1] must not be empty"),
            (["batteries_out": ["B45-1", "B45-1"]], "batteries_out lists \"B45-1\" twice"),
        ]
        for (change, mention) in cases {
            let result = try verify(snapshot([record(1), record(2), record(3, change)]))
            expectRefused(result, .malformed, mentioning: "entitlements[2]", "plan_instance_id \"pi-000003\"", mention)
            #expect(result.refusal?.requestID == "r-91")
        }
        // A bad plan_instance_id: the record is named by its index.
        expectRefused(try verify(snapshot([record(1, ["plan_instance_id": ""])])), .malformed,
                      mentioning: "entitlements[0]", "plan_instance_id must not be empty")
    }

    @Test func missingRecordFieldsAreNamed() throws {
        let fields = ["plan_instance_id", "customer_id", "subscription_ref", "status", "valid_from", "valid_until",
                      "network_code", "battery_family", "swap_quota", "swaps_used", "energy_quota_kwh", "energy_used_kwh",
                      "overage_allowed", "max_batteries", "batteries_out", "version"]
        for field in fields {
            expectRefused(try verify(snapshot([record(5, without: field)])), .malformed, mentioning: "entitlements[0]", "\(field) is missing")
            expectRefused(try verify(delta([record(6), record(5, without: field)])), .malformed, mentioning: "upsert[1]", "\(field) is missing")
        }
    }

    @Test func recordThatIsNotAnObject() throws {
        expectRefused(try verify(merged(snapshot([]), ["entitlements": [record(1), "pi-2"]])), .malformed,
                      mentioning: "entitlements[1] must be an object")
    }

    @Test func duplicateFieldInARecord() throws {
        let r = String(decoding: json(record(9)), as: UTF8.self).dropLast() + ",\"swaps_used\":0}"
        let text = "{\"request_id\":\"r-91\",\"issued_at\":\"\(rfc3339(testNow))\",\"expires_at\":\"\(rfc3339(testNow.addingTimeInterval(60)))\",\"kind\":\"snapshot\",\"version\":1,\"entitlements\":[\(r)]}"
        let result = try key.verifier().verify(command: "entitlements", payload: try key.envelope(Array(text.utf8)), retained: false, now: testNow)
        // Refused by the reader, which checks every object at every level (issue 9 item 17).
        expectRefused(result, .malformed, mentioning: "\"swaps_used\" appears twice")
    }

    /// Contract 1.1: `counted_through_seq` is optional on both kinds, an integer ≥ 0 when present,
    /// and passed through with the body (absent: nil, which acknowledges nothing).
    @Test func countedThroughSeqIsOptionalAndPassedThrough() throws {
        #expect(try verify(merged(snapshot([]), ["counted_through_seq": 1042])).command?.body
                == .entitlementSnapshot(version: 5120, entitlements: [], countedThroughSeq: 1042))
        #expect(try verify(merged(snapshot([]), ["counted_through_seq": 0])).command?.body
                == .entitlementSnapshot(version: 5120, entitlements: [], countedThroughSeq: 0))
        #expect(try verify(snapshot([])).command?.body == .entitlementSnapshot(version: 5120, entitlements: [], countedThroughSeq: nil))
        #expect(try verify(merged(delta([]), ["counted_through_seq": 1057])).command?.body
                == .entitlementDelta(baseVersion: 5120, version: 5121, upsert: [], remove: [], countedThroughSeq: 1057))
        #expect(try verify(delta([])).command?.body
                == .entitlementDelta(baseVersion: 5120, version: 5121, upsert: [], remove: [], countedThroughSeq: nil))
        let bad: [(Any, String)] = [(-1, "counted_through_seq must be ≥ 0"), (NSNull(), "counted_through_seq must be an integer"),
                                    ("1042", "counted_through_seq must be an integer"), (1.5, "counted_through_seq must be an integer")]
        for (value, mention) in bad {
            expectRefused(try verify(merged(snapshot([]), ["counted_through_seq": value])), .malformed, mentioning: mention)
            expectRefused(try verify(merged(delta([]), ["counted_through_seq": value])), .malformed, mentioning: mention)
        }
    }

    @Test func snapshotRules() throws {
        let cases: [([String: Any], String)] = [
            (["version": 1, "entitlements": []], "missing kind"),
            (["kind": "full", "version": 1, "entitlements": []], "kind must be \"snapshot\" or \"delta\""),
            (["kind": 1, "version": 1, "entitlements": []], "kind must be"),
            (["kind": "snapshot", "entitlements": []], "missing version"),
            (["kind": "snapshot", "version": -1, "entitlements": []], "version must be ≥ 0"),
            (["kind": "snapshot", "version": "5", "entitlements": []], "version must be an integer"),
            (["kind": "snapshot", "version": 1], "missing entitlements"),
            (["kind": "snapshot", "version": 1, "entitlements": ["a": 1]], "entitlements must be an array"),
            (merged(snapshot([]), ["upsert": []]), "a snapshot must not carry upsert"),
            (merged(snapshot([]), ["base_version": 1]), "a snapshot must not carry base_version"),
            (merged(snapshot([]), ["remove": []]), "a snapshot must not carry remove"),
            (snapshot([record(1), record(2), record(1)]), "entitlements[2] (plan_instance_id \"pi-000001\") duplicates entitlements[0]"),
        ]
        for (body, mention) in cases {
            expectRefused(try verify(body), .malformed, mentioning: mention)
        }
    }

    @Test func deltaRules() throws {
        var noUpsert = delta([])
        noUpsert.removeValue(forKey: "upsert")
        var noRemove = delta([])
        noRemove.removeValue(forKey: "remove")
        var noBase = delta([])
        noBase.removeValue(forKey: "base_version")
        let cases: [([String: Any], String)] = [
            (noUpsert, "missing upsert"),
            (noRemove, "missing remove"),
            (noBase, "missing base_version"),
            (delta([], base: 5121, version: 5121), "version 5121 must be greater than base_version 5121"),
            (delta([], base: -1, version: 2), "base_version must be ≥ 0"),
            (delta([], remove: [7]), "remove[0] must be a string"),
            (delta([], remove: [""]), "remove[0] must not be empty"),
            (delta([], remove: ["pi-1", "pi-1"]), "remove[1] lists \"pi-1\" twice"),
            (delta([record(4)], remove: ["pi-000004"]), "remove[0] (\"pi-000004\") is also upsert[0]"),
            (delta([record(4), record(4)]), "upsert[1] (plan_instance_id \"pi-000004\") duplicates upsert[0]"),
            (merged(delta([]), ["entitlements": []]), "a delta must not carry entitlements"),
            (merged(delta([]), ["upsert": NSNull()]), "upsert must be an array"),
            (merged(delta([]), ["remove": "pi-1"]), "remove must be an array"),
            (delta([record(4, ["swaps_used": -3])]), "upsert[0] (plan_instance_id \"pi-000004\"): swaps_used must be ≥ 0"),
        ]
        for (body, mention) in cases {
            expectRefused(try verify(body), .malformed, mentioning: mention)
        }
    }

    /// Unknown keys in a record are ignored (ABS may add fields).
    @Test func unknownRecordFieldsAreIgnored() throws {
        let result = try verify(snapshot([record(1, ["loyalty_tier": ["gold", 3], "note": NSNull()])]))
        #expect(result.command != nil, "\(String(describing: result.refusal))")
    }
}
