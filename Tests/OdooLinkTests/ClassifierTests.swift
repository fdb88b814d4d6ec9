import Foundation
import Testing
@testable import OdooLink

@Suite struct ClassifierTests {
    func errorBody(name: String?, code: Int = 200, message: String = "Something") -> [UInt8] {
        var data: [String: Any] = ["message": message, "arguments": [message], "debug": "Traceback ..."]
        if let name { data["name"] = name }
        let body: [String: Any] = ["jsonrpc": "2.0", "id": 17,
                                   "error": ["code": code, "message": "Odoo Server Error", "data": data]]
        return [UInt8](try! JSONSerialization.data(withJSONObject: body))
    }

    func classify(_ status: Int, _ body: String, headers: [(String, String)] = []) -> UsageOutcome {
        OdooResponseClassifier.classify(status: status, headers: headers, body: Array(body.utf8))
    }

    // MARK: success

    @Test func recorded() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":17,"result":{"status":"recorded","usage_log_id":5531}}"#)
            == .recorded(usageLogID: 5531))
    }

    @Test func duplicate() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":17,"result":{"status":"duplicate","usage_log_id":5531}}"#)
            == .duplicate(usageLogID: 5531))
    }

    @Test func recordedWithoutOrWithOddID() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"status":"recorded"}}"#) == .recorded(usageLogID: nil))
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"status":"recorded","usage_log_id":true}}"#)
            == .recorded(usageLogID: nil))
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"status":"duplicate","usage_log_id":"7"}}"#)
            == .duplicate(usageLogID: nil))
    }

    // MARK: application errors (HTTP 200)

    @Test(arguments: ["odoo.exceptions.ValidationError", "odoo.exceptions.UserError", "odoo.exceptions.MissingError"])
    func rejectedNames(name: String) {
        for code in [0, 200] {
            let outcome = OdooResponseClassifier.classify(
                status: 200, headers: [], body: errorBody(name: name, code: code, message: "Unknown subscription SUB/1"))
            #expect(outcome == .rejected(errorName: name, message: "Unknown subscription SUB/1"))
        }
    }

    @Test(arguments: ["odoo.exceptions.AccessDenied", "odoo.exceptions.AccessError", "werkzeug.exceptions.Unauthorized"])
    func credentialNames(name: String) {
        for code in [0, 200] {
            let outcome = OdooResponseClassifier.classify(status: 200, headers: [], body: errorBody(name: name, code: code))
            #expect(outcome.isCredentials, "\(name) code \(code) → \(outcome)")
        }
    }

    @Test func sessionExpiredCode100() {
        let expired = OdooResponseClassifier.classify(
            status: 200, headers: [], body: errorBody(name: "odoo.http.SessionExpiredException", code: 100))
        #expect(expired.isCredentials)
        // Code 100 means session expired whatever the name says.
        let unnamed = OdooResponseClassifier.classify(status: 200, headers: [], body: errorBody(name: nil, code: 100))
        #expect(unnamed.isCredentials)
    }

    @Test(arguments: ["psycopg2.errors.SerializationFailure", "odoo.exceptions.ConcurrencyError",
                      "builtins.KeyError", "werkzeug.exceptions.NotFound", "odoo.exceptions.CacheMiss"])
    func transientNames(name: String) {
        for code in [0, 200, 404] {
            let outcome = OdooResponseClassifier.classify(status: 200, headers: [], body: errorBody(name: name, code: code))
            #expect(outcome.isTransient, "\(name) code \(code) → \(outcome)")
            #expect(outcome.reasonText.contains(name))
        }
    }

    @Test func errorWithoutDataOrNotAnObject() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"error":{"code":200,"message":"Odoo Server Error"}}"#).isTransient)
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"error":"boom"}"#).isTransient)
    }

    @Test func rejectedMessageFallsBackToArguments() {
        let body = #"{"jsonrpc":"2.0","id":1,"error":{"code":0,"message":"Odoo Server Error","#
            + #""data":{"name":"odoo.exceptions.UserError","arguments":["No such plan"]}}}"#
        #expect(classify(200, body) == .rejected(errorName: "odoo.exceptions.UserError", message: "No such plan"))
    }

    // MARK: HTTP statuses

    @Test(arguments: [401, 403])
    func credentialStatuses(status: Int) {
        #expect(classify(status, "<html>nope</html>") == .credentials(reason: "HTTP \(status)"))
        // even with a JSON-RPC success body, the status wins
        #expect(classify(status, #"{"jsonrpc":"2.0","id":1,"result":{"status":"recorded"}}"#).isCredentials)
    }

    @Test func tooManyRequestsWithSeconds() {
        #expect(classify(429, "slow down", headers: [("Retry-After", "2")]) == .transient(reason: "HTTP 429", retryAfter: 2))
        #expect(classify(429, "", headers: [("retry-after", " 120 ")]).retryAfter == 120)
        #expect(classify(429, "") == .transient(reason: "HTTP 429", retryAfter: nil))
        #expect(classify(429, "", headers: [("Retry-After", "soon")]) == .transient(reason: "HTTP 429", retryAfter: nil))
    }

    @Test func tooManyRequestsWithHTTPDate() {
        let now = Date(timeIntervalSince1970: 1_795_341_871)   // 2026-11-22T10:04:31Z, a Sunday
        let outcome = OdooResponseClassifier.classify(
            status: 429, headers: [("Retry-After", "Sun, 22 Nov 2026 10:05:01 GMT")], body: [], now: now)
        #expect(outcome == .transient(reason: "HTTP 429", retryAfter: 30))
        let past = OdooResponseClassifier.classify(
            status: 429, headers: [("Retry-After", "Sun, 22 Nov 2026 10:00:00 GMT")], body: [], now: now)
        #expect(past.retryAfter == 0)
        let rfc850 = OdooResponseClassifier.classify(
            status: 503, headers: [("Retry-After", "Sunday, 22-Nov-26 10:04:41 GMT")], body: [], now: now)
        #expect(rfc850.retryAfter == 10)
    }

    @Test(arguments: [500, 502, 503, 504, 599])
    func serverErrors(status: Int) {
        let outcome = classify(status, "<html><title>\(status)</title></html>")
        #expect(outcome == .transient(reason: "HTTP \(status)", retryAfter: nil))
        #expect(classify(status, "", headers: [("Retry-After", "7")]).retryAfter == 7)
    }

    @Test(arguments: [301, 400, 404, 405, 415, 418])
    func otherStatusesAreTransient(status: Int) {
        #expect(classify(status, "<html></html>").isTransient)
    }

    // MARK: 200 that is not a JSON-RPC answer

    @Test func htmlProxyPage() {
        let outcome = classify(200, "<!doctype html><html><body>We'll be back soon</body></html>",
                               headers: [("Content-Type", "text/html")])
        #expect(outcome.isTransient)
    }

    @Test func emptyBody() { #expect(classify(200, "").isTransient) }

    @Test func garbageJSON() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"status":"#).isTransient)
        #expect(classify(200, "[1,2,3]").isTransient)
        #expect(classify(200, "42").isTransient)
        #expect(classify(200, "null").isTransient)
    }

    @Test func neitherResultNorError() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1}"#).isTransient)
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"error":null}"#).isTransient)
    }

    @Test func resultWithUnknownStatus() {
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"status":"queued","usage_log_id":3}}"#).isTransient)
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":{"usage_log_id":3}}"#).isTransient)
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":true}"#).isTransient)
        #expect(classify(200, #"{"jsonrpc":"2.0","id":1,"result":null}"#).isTransient)
    }
}
