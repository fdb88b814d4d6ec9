// HTTPS: a certificate from a private CA is trusted only through `caFile`.
import Foundation
import Testing
import TestSupport
@testable import OdooLink

@Suite struct TLSTests {
    /// A self-signed CA certificate for 127.0.0.1 (it signs itself: the CA file is the certificate).
    func makeCertificate(in dir: TempDir) throws -> (certificate: String, key: String) {
        let cert = dir.path("odoo.pem"), key = dir.path("odoo.key")
        let result = try runCommand("openssl", [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-addext", "basicConstraints=critical,CA:TRUE",
        ])
        try #require(result.status == 0, "openssl: \(result.output)")
        return (cert, key)
    }

    @Test func privateCAIsTrustedThroughCAFileOnly() async throws {
        let dir = try TempDir("odoo-tls")
        defer { dir.remove() }
        let tls = try makeCertificate(in: dir)
        let standIn = try OdooStandIn(tls: tls)
        defer { standIn.stop() }
        #expect(standIn.baseURL.hasPrefix("https://"))

        var trusting = OdooConfiguration(baseURL: standIn.baseURL, apiKey: "test-key")
        trusting.caFile = tls.certificate
        let client = try OdooClient(configuration: trusting)
        let outcome = await client.send(sampleRecord(), rpcID: 1)
        try await client.shutdown()
        #expect(outcome == .recorded(usageLogID: 1))

        var systemOnly = OdooConfiguration(baseURL: standIn.baseURL, apiKey: "test-key")
        systemOnly.connectTimeout = 2
        let untrusting = try OdooClient(configuration: systemOnly)
        let refused = await untrusting.send(sampleRecord(), rpcID: 2)
        try await untrusting.shutdown()
        #expect(refused.isTransient, "\(refused)")
        #expect(refused.reasonText.contains("CERTIFICATE_VERIFY_FAILED"), "\(refused)")
    }
}
