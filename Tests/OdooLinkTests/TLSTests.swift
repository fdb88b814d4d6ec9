// HTTPS: a certificate from a private CA is trusted only through `caFile`.
import Foundation
import Testing
import TestSupport
@testable import OdooLink

@Suite struct TLSTests {
    /// A self-signed CA certificate for 127.0.0.1 (it signs itself: the CA file is the certificate).
    func makeCertificate(in dir: TempDir, name: String = "odoo") throws -> (certificate: String, key: String) {
        let cert = dir.path("\(name).pem"), key = dir.path("\(name).key")
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

    /// caFile adds exactly its certificates: another CA's file does not make the server trusted; a file holding
    /// several certificates (another CA's first) does.
    @Test func caFileTrustsItsCertificatesOnly() async throws {
        let dir = try TempDir("odoo-tls")
        defer { dir.remove() }
        let tls = try makeCertificate(in: dir)
        let other = try makeCertificate(in: dir, name: "other")
        let standIn = try OdooStandIn(tls: tls)
        defer { standIn.stop() }

        var wrong = OdooConfiguration(baseURL: standIn.baseURL, apiKey: "test-key")
        wrong.caFile = other.certificate
        let wrongClient = try OdooClient(configuration: wrong)
        let refused = await wrongClient.send(sampleRecord(), rpcID: 1)
        try await wrongClient.shutdown()
        #expect(refused.isTransient, "\(refused)")
        #expect(refused.reasonText.contains("CERTIFICATE_VERIFY_FAILED"), "\(refused)")

        let bundle = dir.path("bundle.pem")
        let pems = try [other.certificate, tls.certificate].map { try String(contentsOfFile: $0, encoding: .utf8) }
        try pems.joined(separator: "\n").write(toFile: bundle, atomically: true, encoding: .utf8)
        var both = OdooConfiguration(baseURL: standIn.baseURL, apiKey: "test-key")
        both.caFile = bundle
        let client = try OdooClient(configuration: both)
        let outcome = await client.send(sampleRecord(), rpcID: 2)
        try await client.shutdown()
        #expect(outcome == .recorded(usageLogID: 1))
    }

    /// With caFile the system trust store stays: the roots handed to libcurl are the file's, then the system bundle.
    @Test func caFileIsAddedToTheSystemBundle() throws {
        let dir = try TempDir("odoo-tls")
        defer { dir.remove() }
        let tls = try makeCertificate(in: dir)
        let extra = try Array(Data(contentsOf: URL(fileURLWithPath: tls.certificate)))
        let systemPath = try #require(HTTPTransport.defaultCABundlePath(), "libcurl has no default CA file here")
        let system = try Array(Data(contentsOf: URL(fileURLWithPath: systemPath)))
        let roots = HTTPTransport.trustRootsPEM(extra: extra)
        #expect(roots.starts(with: extra))
        #expect(roots.count == extra.count + 1 + system.count)
        #expect(Array(roots.suffix(system.count)) == system)
    }
}
