// OdooClient against the real stand-in (tools/odoo_standin.py) over HTTP.
import Foundation
import Testing
import StationDomain
import TestSupport
@testable import OdooLink

/// Starts a stand-in and a client for it, runs `body`, then shuts both down.
func withStandIn(keys: [String] = ["test-key"], standInArguments: [String] = [], apiKey: String = "test-key",
                 configure: (inout OdooConfiguration) -> Void = { _ in },
                 _ body: (OdooStandIn, OdooClient) async throws -> Void) async throws {
    let standIn = try OdooStandIn(keys: keys, extraArguments: standInArguments)
    defer { standIn.stop() }
    var configuration = OdooConfiguration(baseURL: standIn.baseURL, apiKey: apiKey)
    configure(&configuration)
    let client = try OdooClient(configuration: configuration)
    do {
        try await body(standIn, client)
    } catch {
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
}

@Suite struct StandInClientTests {
    @Test func recordedThenDuplicateOnResend() async throws {
        try await withStandIn { standIn, client in
            let record = sampleRecord(energy: 1.94449)
            let first = await client.send(record, rpcID: 1)
            guard case .recorded(let id?) = first else { Issue.record("expected recorded, got \(first)"); return }
            #expect(await client.send(record, rpcID: 2) == .duplicate(usageLogID: id))
            #expect(await client.send(sampleRecord(), rpcID: 3) == .recorded(usageLogID: id + 1))

            let records = try standIn.records()
            #expect(records.count == 2)
            #expect(records.first?["idempotency_key"] as? String == record.idempotencyKey)
            #expect(records.first?["attempts"] as? Int == 2)
            let params = try #require(records.first?["params"] as? [String: Any])
            #expect(params["occurred_at"] as? String == "2026-11-22T10:04:31.250Z")
            let lines = try #require(params["lines"] as? [[String: Any]])
            #expect(lines.last?["quantity"] as? Double == 1.944)
            let stats = try standIn.stats()
            #expect(stats["recorded"] as? Int == 2)
            #expect(stats["duplicates"] as? Int == 1)
        }
    }

    @Test func returnWithoutBatteryInIsRecorded() async throws {
        try await withStandIn { _, client in
            #expect(await client.send(sampleRecord(batteryIn: false), rpcID: 1) == .recorded(usageLogID: 1))
        }
    }

    @Test func validationErrorIsRejected() async throws {
        try await withStandIn { standIn, client in
            let outcome = await client.send(sampleRecord(customer: ""), rpcID: 1)
            guard case .rejected(let name, let message) = outcome else { Issue.record("got \(outcome)"); return }
            #expect(name == "odoo.exceptions.ValidationError")
            #expect(message.contains("customer_id"))
            // a quantity that cannot be a number goes out as null: rejected too, not retried forever
            #expect(await client.send(sampleRecord(energy: .nan), rpcID: 2).isRejected)
            let records = try standIn.records()
            #expect(records.isEmpty)
        }
    }

    @Test func unknownSubscriptionIsRejected() async throws {
        try await withStandIn(standInArguments: ["--unknown-subscription", "SUB/2026/99999"]) { _, client in
            let outcome = await client.send(sampleRecord(subscription: "SUB/2026/99999"), rpcID: 1)
            #expect(outcome == .rejected(errorName: "odoo.exceptions.ValidationError",
                                         message: "Unknown subscription SUB/2026/99999"))
            let other = await client.send(sampleRecord(subscription: "CONTRACT-7"), rpcID: 2)
            #expect(other == .rejected(errorName: "odoo.exceptions.ValidationError", message: "Unknown subscription CONTRACT-7"))
            #expect(await client.send(sampleRecord(), rpcID: 3) == .recorded(usageLogID: 1))
        }
    }

    @Test func wrongKeyIsACredentialsProblem() async throws {
        try await withStandIn(apiKey: "not-the-key") { standIn, client in
            let outcome = await client.send(sampleRecord(), rpcID: 1)
            #expect(outcome.isCredentials)
            #expect(outcome.reasonText.contains("AccessDenied"))
            #expect(!outcome.reasonText.contains("not-the-key"))
            let records = try standIn.records()
            #expect(records.isEmpty)
        }
    }

    @Test func wrongKeyAnswered401() async throws {
        try await withStandIn(standInArguments: ["--auth-failure-http", "401"], apiKey: "nope") { _, client in
            #expect(await client.send(sampleRecord(), rpcID: 1) == .credentials(reason: "HTTP 401"))
        }
    }

    @Test func expiredKey() async throws {
        try await withStandIn(keys: ["test-key", "second-key"]) { standIn, client in
            #expect(await client.send(sampleRecord(), rpcID: 1) == .recorded(usageLogID: 1))
            try standIn.faults(["expire_key": "test-key"])
            let record = sampleRecord()
            #expect(await client.send(record, rpcID: 2).isCredentials)
            // the other key still works: a rotated key fixes it
            let rotated = try OdooClient(configuration: .init(baseURL: standIn.baseURL, apiKey: "second-key"))
            let outcome = await rotated.send(record, rpcID: 3)
            try await rotated.shutdown()
            #expect(outcome == .recorded(usageLogID: 2))
        }
    }

    @Test func sessionExpiredIsACredentialsProblem() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["session_expired": true, "count": 1])
            let record = sampleRecord()
            let outcome = await client.send(record, rpcID: 1)
            #expect(outcome.isCredentials)
            #expect(outcome.reasonText.contains("session expired"))
            #expect(await client.send(record, rpcID: 2) == .recorded(usageLogID: 1))
        }
    }

    @Test func serviceUnavailableIsTransientThenRecorded() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["status": 503, "count": 3])
            let record = sampleRecord()
            for rpcID in 1...3 {
                #expect(await client.send(record, rpcID: rpcID) == .transient(reason: "HTTP 503", retryAfter: nil))
            }
            #expect(await client.send(record, rpcID: 4) == .recorded(usageLogID: 1))
            #expect(try standIn.attempts(record.idempotencyKey) == 4)
            #expect((try standIn.stats()["errors"] as? [String: Any])?["http_503"] as? Int == 3)
        }
    }

    @Test(arguments: [502, 504, 500])
    func otherServerErrorsAreTransient(status: Int) async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["status": status, "count": 1])
            #expect(await client.send(sampleRecord(), rpcID: 1) == .transient(reason: "HTTP \(status)", retryAfter: nil))
        }
    }

    @Test func tooManyRequestsHonoursRetryAfter() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["status": 429, "retry_after": 2, "count": 1])
            let outcome = await client.send(sampleRecord(), rpcID: 1)
            #expect(outcome == .transient(reason: "HTTP 429", retryAfter: 2))
            #expect(Backoff().delay(attempt: 1, outcome: outcome, random: 0) == 2)
        }
    }

    @Test func connectionResetIsTransient() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["reset": true, "count": 2])
            let record = sampleRecord()
            #expect(await client.send(record, rpcID: 1).isTransient)
            #expect(await client.send(record, rpcID: 2).isTransient)
            #expect(await client.send(record, rpcID: 3) == .recorded(usageLogID: 1))
        }
    }

    @Test func htmlPageWithStatus200IsTransient() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["html": true, "count": 1])
            let outcome = await client.send(sampleRecord(), rpcID: 1)
            #expect(outcome.isTransient)
            #expect(outcome.reasonText.contains("not JSON"))
        }
    }

    @Test func oversizedAnswerIsTransient() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["oversize": true, "count": 1])
            let outcome = await client.send(sampleRecord(), rpcID: 1)
            #expect(outcome.isTransient)
            #expect(outcome.reasonText.contains("larger than"))
        }
    }

    @Test func latencyBeyondTheRequestTimeoutIsTransient() async throws {
        try await withStandIn(configure: { $0.requestTimeout = 0.5 }) { standIn, client in
            try standIn.faults(["latency_ms": 3000, "count": 1])
            let record = sampleRecord()
            let outcome = await client.send(record, rpcID: 1)
            #expect(outcome.isTransient, "\(outcome)")
            // Odoo may still have recorded it after the client gave up: the resend is then a duplicate.
            let again = await client.send(record, rpcID: 2)
            #expect(again.isSettled, "\(again)")
        }
    }

    @Test(arguments: [
        ("psycopg2.errors.SerializationFailure", "transient"), ("odoo.exceptions.ConcurrencyError", "transient"),
        ("builtins.RuntimeError", "transient"), ("UserError", "rejected"), ("MissingError", "rejected"),
        ("ValidationError", "rejected"), ("AccessError", "credentials"), ("werkzeug.exceptions.Unauthorized", "credentials"),
    ])
    func exceptionsFromOdoo(name: String, expected: String) async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["exception": name, "count": 1])
            let record = sampleRecord()
            let outcome = await client.send(record, rpcID: 1)
            switch expected {
            case "transient": #expect(outcome.isTransient, "\(name) → \(outcome)")
            case "rejected": #expect(outcome.isRejected, "\(name) → \(outcome)")
            default: #expect(outcome.isCredentials, "\(name) → \(outcome)")
            }
            #expect(await client.send(record, rpcID: 2) == .recorded(usageLogID: 1))
        }
    }

    @Test func serializationFailureTwiceThenRecorded() async throws {
        try await withStandIn { standIn, client in
            try standIn.faults(["exception": "psycopg2.errors.SerializationFailure", "count": 2])
            let record = sampleRecord()
            #expect(await client.send(record, rpcID: 1).isTransient)
            #expect(await client.send(record, rpcID: 2).isTransient)
            #expect(await client.send(record, rpcID: 3) == .recorded(usageLogID: 1))
            #expect(try standIn.records().count == 1)
        }
    }

    @Test func databaseHeaderRequiredWhenConfigured() async throws {
        try await withStandIn(standInArguments: ["--database", "prod"], configure: { $0.database = "prod" }) { standIn, client in
            #expect(await client.send(sampleRecord(), rpcID: 1) == .recorded(usageLogID: 1))
            #expect(try standIn.records().first?["database"] as? String == "prod")
            // without the header (or with another database) the route does not exist there: HTTP 404
            for database in [nil, "", "staging"] as [String?] {
                var configuration = OdooConfiguration(baseURL: standIn.baseURL, apiKey: "test-key")
                configuration.database = database
                let other = try OdooClient(configuration: configuration)
                let outcome = await other.send(sampleRecord(), rpcID: 2)
                try await other.shutdown()
                #expect(outcome == .transient(reason: "HTTP 404", retryAfter: nil), "database \(database ?? "nil")")
            }
        }
    }

    @Test func databaseMismatchAnsweredAsAccessDenied() async throws {
        try await withStandIn(standInArguments: ["--database", "prod", "--database-failure", "access-denied"]) { _, client in
            #expect(await client.send(sampleRecord(), rpcID: 1).isCredentials)
        }
    }

    @Test func connectionRefusedIsTransient() async throws {
        let port = freeLoopbackPort()
        var configuration = OdooConfiguration(baseURL: "http://127.0.0.1:\(port)", apiKey: "k")
        // async-http-client keeps trying to connect until the connect timeout, then reports the last error
        configuration.connectTimeout = 1
        let client = try OdooClient(configuration: configuration)
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        try await client.shutdown()
        #expect(outcome.isTransient, "\(outcome)")
        #expect(outcome.reasonText.lowercased().contains("refused"), "\(outcome)")
    }

    @Test func inFlightRequestsAreBounded() async throws {
        try await withStandIn(configure: { $0.maxConcurrentRequests = 2 }) { standIn, client in
            try standIn.faults(["latency_ms": 150, "count": 10])
            let outcomes = await withTaskGroup(of: UsageOutcome.self) { group in
                for i in 1...10 { group.addTask { await client.send(sampleRecord(), rpcID: i) } }
                var all: [UsageOutcome] = []
                for await o in group { all.append(o) }
                return all
            }
            #expect(outcomes.allSatisfy { if case .recorded = $0 { return true }; return false }, "\(outcomes)")
            let stats = try standIn.stats()
            let maxInFlight = try #require(stats["max_in_flight"] as? Int)
            #expect(maxInFlight >= 1 && maxInFlight <= 2, "max in flight \(maxInFlight)")
            #expect(stats["recorded"] as? Int == 10)
        }
    }

    @Test func apiKeyNeverAppearsInOutcomes() async throws {
        try await withStandIn(keys: ["s3cr3t-api-key"], apiKey: "s3cr3t-api-key") { standIn, client in
            try standIn.faults(["exception": "UserError", "message": "refused for s3cr3t-api-key", "count": 1])
            let outcome = await client.send(sampleRecord(), rpcID: 1)
            #expect(outcome.isRejected)
            #expect(!outcome.reasonText.contains("s3cr3t-api-key"))
            #expect(outcome.reasonText.contains("<redacted>"))
            #expect(!"\(client.configuration)".contains("s3cr3t-api-key"))
            #expect(!String(reflecting: client.configuration).contains("s3cr3t-api-key"))
            var dumped = ""
            dump(client.configuration, to: &dumped)
            #expect(!dumped.contains("s3cr3t-api-key"))
        }
    }

    @Test func recordsSurviveAStandInRestart() async throws {
        let dir = try TempDir("odoo-standin")
        defer { dir.remove() }
        let dataFile = dir.path("usage.json")
        let record = sampleRecord()
        try await withStandIn(standInArguments: ["--data-file", dataFile]) { _, client in
            #expect(await client.send(record, rpcID: 1) == .recorded(usageLogID: 1))
        }
        try await withStandIn(standInArguments: ["--data-file", dataFile]) { standIn, client in
            #expect(await client.send(record, rpcID: 2) == .duplicate(usageLogID: 1))
            #expect(await client.send(sampleRecord(), rpcID: 3) == .recorded(usageLogID: 2))
            let records = try standIn.records()
            #expect(records.count == 2)
        }
    }

    /// Makes a client and shuts it down again (a client that is never shut down would trap).
    func make(_ configuration: OdooConfiguration) async throws {
        let client = try OdooClient(configuration: configuration)
        try await client.shutdown()
    }

    @Test func invalidConfigurationsAreRefused() async throws {
        await #expect(throws: OdooConfigurationError.self) { try await make(.init(baseURL: "ftp://x", apiKey: "k")) }
        await #expect(throws: OdooConfigurationError.self) { try await make(.init(baseURL: "not a url", apiKey: "k")) }
        await #expect(throws: OdooConfigurationError.emptyAPIKey) { try await make(.init(baseURL: "http://h", apiKey: "")) }
        var c = OdooConfiguration(baseURL: "https://odoo.example.com", apiKey: "k")
        c.caFile = "/nonexistent/ca.pem"
        await #expect(throws: OdooConfigurationError.caFileUnreadable("/nonexistent/ca.pem")) { try await make(c) }
        c.caFile = nil
        c.maxConcurrentRequests = 0
        await #expect(throws: OdooConfigurationError.self) { try await make(c) }
        c.maxConcurrentRequests = 4
        c.requestTimeout = 0
        await #expect(throws: OdooConfigurationError.self) { try await make(c) }
        c.requestTimeout = 15
        try await make(c)   // and a valid one is accepted
    }

    @Test func usageLogURL() {
        #expect(OdooConfiguration(baseURL: "https://odoo.example.com/", apiKey: "k").usageLogURL
            == "https://odoo.example.com/api/subscription/usage_log")
        #expect(OdooConfiguration(baseURL: "http://127.0.0.1:8069", apiKey: "k").usageLogURL
            == "http://127.0.0.1:8069/api/subscription/usage_log")
    }
}
