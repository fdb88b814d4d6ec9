// The stand-in itself, spoken to over raw HTTP: it must behave like Odoo for the client's tests to mean anything.
import Foundation
import Testing
import TestSupport

@Suite struct StandInSelfTests {
    static let path = "/api/subscription/usage_log"

    func envelope(id: Int = 7, key: String = UUID().uuidString, quantity: String = "1.944",
                  occurredAt: String = "2026-11-22T10:04:31.250Z") -> [UInt8] {
        Array(("""
        {"jsonrpc":"2.0","method":"call","id":\(id),"params":{"idempotency_key":"\(key)",
         "subscription_ref":"SUB/2026/00042","plan_instance_id":"pi-1","customer_id":"c-1","station_id":"S-1",
         "outlet_code":"O-1","occurred_at":"\(occurredAt)","recorded_offline":false,
         "lines":[{"service_id":"service-energy-gage","quantity":\(quantity),"unit":"kWh"}],
         "swap":{"swap_id":"\(key)","battery_out":{"id":"B1","soc_pct":98.7,"slot":4},"battery_in":null}}}
        """).utf8)
    }

    func post(_ standIn: OdooStandIn, body: [UInt8], contentType: String = "application/json",
              authorization: String? = "bearer test-key", extra: [String: String] = [:]) throws -> RawHTTPResponse {
        var headers = extra
        headers["Content-Type"] = contentType
        if let authorization { headers["Authorization"] = authorization }
        return try rawHTTP(port: standIn.port, method: "POST", path: Self.path, headers: headers, body: body)
    }

    func json(_ response: RawHTTPResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any])
    }

    func errorName(_ response: RawHTTPResponse) throws -> String? {
        ((try json(response)["error"] as? [String: Any])?["data"] as? [String: Any])?["name"] as? String
    }

    @Test func wrongContentTypeIs415WithANonJSONBody() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        for type in ["text/plain", "application/x-www-form-urlencoded", "text/html"] {
            let response = try post(standIn, body: envelope(), contentType: type)
            #expect(response.status == 415)
            #expect((try? JSONSerialization.jsonObject(with: Data(response.body))) == nil)
        }
        #expect(try standIn.records().isEmpty)
        // with the charset parameter it is fine
        #expect(try post(standIn, body: envelope(), contentType: "application/json; charset=utf-8").status == 200)
    }

    @Test func bodyThatIsNotJSONIs400() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        let response = try post(standIn, body: Array("idempotency_key=1".utf8))
        #expect(response.status == 400)
        #expect((try? JSONSerialization.jsonObject(with: Data(response.body))) == nil)
        #expect(try post(standIn, body: Array(#"{"jsonrpc":"1.0","params":{}}"#.utf8)).status == 400)
        #expect(try post(standIn, body: Array("[1]".utf8)).status == 400)
    }

    @Test func successAndDuplicateEchoTheID() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        let body = envelope(id: 4242, key: "key-1")
        let first = try json(try post(standIn, body: body))
        #expect(first["jsonrpc"] as? String == "2.0")
        #expect(first["id"] as? Int == 4242)
        #expect((first["result"] as? [String: Any])?["status"] as? String == "recorded")
        let usageLogID = (first["result"] as? [String: Any])?["usage_log_id"] as? Int
        #expect(usageLogID != nil)
        let second = try json(try post(standIn, body: envelope(id: 4243, key: "key-1"), authorization: "BEARER test-key"))
        #expect(second["id"] as? Int == 4243)
        #expect((second["result"] as? [String: Any])?["status"] as? String == "duplicate")
        #expect((second["result"] as? [String: Any])?["usage_log_id"] as? Int == usageLogID)
        #expect(try standIn.attempts("key-1") == 2)
    }

    @Test func authenticationFailuresAreHTTP200AccessDenied() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        for authorization in [nil, "bearer wrong", "Basic dGVzdC1rZXk=", "test-key"] as [String?] {
            let response = try post(standIn, body: envelope(), authorization: authorization)
            #expect(response.status == 200)
            #expect(try errorName(response) == "odoo.exceptions.AccessDenied", "\(authorization ?? "none")")
        }
        #expect(try standIn.records().isEmpty)
    }

    @Test func errorBodyHasTheContractsShape() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        let response = try post(standIn, body: envelope(id: 9, quantity: "1.9445"))
        #expect(response.status == 200)
        let top = try json(response)
        #expect(Set(top.keys) == ["jsonrpc", "id", "error"])
        #expect(top["id"] as? Int == 9)
        let error = try #require(top["error"] as? [String: Any])
        #expect(error["code"] as? Int == 200)
        #expect(error["message"] as? String == "Odoo Server Error")
        let data = try #require(error["data"] as? [String: Any])
        #expect(Set(data.keys) == ["name", "message", "arguments", "debug"])
        #expect(data["name"] as? String == "odoo.exceptions.ValidationError")
        #expect((data["message"] as? String)?.contains("more than 3 decimals") == true)
        #expect(data["arguments"] as? [String] == [data["message"] as? String ?? ""])
    }

    @Test(arguments: ["2026-11-22 10:04:31", "2026-11-22T10:04:31", "22/11/2026", "2026-13-22T10:04:31Z", ""])
    func occurredAtMustBeRFC3339(occurredAt: String) throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        let response = try post(standIn, body: envelope(occurredAt: occurredAt))
        #expect(try errorName(response) == "odoo.exceptions.ValidationError")
    }

    @Test func acceptedRFC3339Variants() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        for (i, occurredAt) in ["2026-11-22T10:04:31Z", "2026-11-22T10:04:31.250+01:00"].enumerated() {
            let response = try json(try post(standIn, body: envelope(key: "k\(i)", occurredAt: occurredAt)))
            #expect((response["result"] as? [String: Any])?["status"] as? String == "recorded")
        }
    }

    @Test func methodHealthAndUnknownRoutes() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        #expect(try rawHTTP(port: standIn.port, method: "GET", path: Self.path).status == 405)
        let health = try rawHTTP(port: standIn.port, method: "GET", path: "/web/health")
        #expect(health.status == 200)
        #expect(try json(health)["status"] as? String == "pass")
        #expect(try rawHTTP(port: standIn.port, method: "GET", path: "/web/login").status == 404)
    }

    @Test func databaseHeader() throws {
        let standIn = try OdooStandIn(extraArguments: ["--database", "prod"])
        defer { standIn.stop() }
        #expect(try post(standIn, body: envelope()).status == 404)
        #expect(try post(standIn, body: envelope(), extra: ["X-Odoo-Database": "other"]).status == 404)
        #expect(try post(standIn, body: envelope(), extra: ["X-Odoo-Database": "prod"]).status == 200)
        #expect(try standIn.records().count == 1)
    }

    @Test func faultsAreConsumedInOrderAndStatsCount() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        try standIn.faults(["status": 503, "count": 1])
        try standIn.faults(["status": 429, "retry_after": 2, "count": 1])
        try standIn.faults(["html": true, "count": 1])
        let key = "k-faults"
        #expect(try post(standIn, body: envelope(key: key)).status == 503)
        let limited = try post(standIn, body: envelope(key: key))
        #expect(limited.status == 429)
        #expect(limited.header("Retry-After") == "2")
        let html = try post(standIn, body: envelope(key: key))
        #expect(html.status == 200)
        #expect(html.header("Content-Type")?.hasPrefix("text/html") == true)
        #expect(try post(standIn, body: envelope(key: key)).status == 200)
        #expect(try standIn.attempts(key) == 4)
        let stats = try standIn.stats()
        #expect(stats["requests"] as? Int == 4)
        #expect(stats["recorded"] as? Int == 1)
        let errors = try #require(stats["errors"] as? [String: Int])
        #expect(errors["http_503"] == 1 && errors["http_429"] == 1 && errors["html"] == 1)
        #expect(stats["pending_faults"] as? Int == 0)
    }

    @Test func resetFaultClosesWithoutAnAnswer() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        try standIn.faults(["reset": true, "count": 1])
        #expect(throws: TestSupportError.self) { try post(standIn, body: envelope()) }
        #expect(try post(standIn, body: envelope()).status == 200)
    }

    @Test func sessionExpiredHasCode100() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        try standIn.faults(["session_expired": true, "count": 1])
        let response = try json(try post(standIn, body: envelope()))
        let error = try #require(response["error"] as? [String: Any])
        #expect(error["code"] as? Int == 100)
        #expect((error["data"] as? [String: Any])?["name"] as? String == "odoo.http.SessionExpiredException")
    }

    @Test func expireKeyClearAndReset() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        #expect(try post(standIn, body: envelope()).status == 200)
        try standIn.faults(["expire_key": "test-key"])
        #expect(try errorName(try post(standIn, body: envelope())) == "odoo.exceptions.AccessDenied")
        try standIn.faults(["clear": true])
        #expect(try errorName(try post(standIn, body: envelope())) == nil)
        #expect(try standIn.records().count == 2)
        try standIn.faults(["status": 503])   // no count: until cleared
        #expect(try post(standIn, body: envelope()).status == 503)
        #expect(try post(standIn, body: envelope()).status == 503)
        try standIn.reset()
        #expect(try standIn.records().isEmpty)
        #expect(try standIn.stats()["requests"] as? Int == 0)
        #expect(try post(standIn, body: envelope()).status == 200)
    }

    @Test func badFaultsAreRefused() throws {
        let standIn = try OdooStandIn()
        defer { standIn.stop() }
        #expect(throws: TestSupportError.self) { try standIn.faults(["bogus": 1]) }
        #expect(throws: TestSupportError.self) { try standIn.faults(["status": 503, "count": 0]) }
        #expect(throws: TestSupportError.self) { try standIn.faults(["status": 503, "html": true]) }
    }

    @Test func sigtermExitsCleanly() throws {
        let standIn = try OdooStandIn()
        #expect(try rawHTTP(port: standIn.port, method: "GET", path: "/web/health").status == 200)
        #expect(standIn.stop() == 0)
    }
}
