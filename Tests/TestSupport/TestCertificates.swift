// Test support: a throw-away PKI made with the `openssl` CLI — a CA, a server certificate
// for 127.0.0.1/localhost and a client certificate, all signed by that CA.
import Foundation

public struct TestCertificates: Sendable {
    public let directory: TempDir
    public let caFile: String
    public let caKeyFile: String
    public let serverCertFile: String
    public let serverKeyFile: String
    public let clientCertFile: String
    public let clientKeyFile: String
    /// The client certificate's subject common name.
    public let clientCommonName: String

    /// Generates everything into a fresh temporary directory (or `directory`). EC P-256
    /// keys: quick to make on a small machine. Valid for 2 days.
    public static func generate(in directory: TempDir? = nil, clientCommonName: String = "swapgate-test-client") throws -> TestCertificates {
        let dir = try directory ?? TempDir("swapgate-certs")
        let ca = dir.path("ca.crt"), caKey = dir.path("ca.key")
        let serverCert = dir.path("server.crt"), serverKey = dir.path("server.key"), serverCSR = dir.path("server.csr")
        let clientCert = dir.path("client.crt"), clientKey = dir.path("client.key"), clientCSR = dir.path("client.csr")
        let serverExt = dir.path("server.ext"), clientExt = dir.path("client.ext")
        try """
            subjectAltName = IP:127.0.0.1, DNS:localhost
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = serverAuth

            """.write(toFile: serverExt, atomically: true, encoding: .utf8)
        try """
            basicConstraints = critical, CA:FALSE
            keyUsage = critical, digitalSignature, keyEncipherment
            extendedKeyUsage = clientAuth

            """.write(toFile: clientExt, atomically: true, encoding: .utf8)

        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        try openssl(["req", "-x509"] + ec + ["-keyout", caKey, "-out", ca, "-days", "2",
                     "-subj", "/CN=swapgate test CA",
                     "-addext", "basicConstraints=critical,CA:TRUE",
                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        try openssl(["req", "-new"] + ec + ["-keyout", serverKey, "-out", serverCSR, "-subj", "/CN=localhost"])
        try openssl(["x509", "-req", "-in", serverCSR, "-CA", ca, "-CAkey", caKey, "-CAcreateserial",
                     "-out", serverCert, "-days", "2", "-extfile", serverExt])
        try openssl(["req", "-new"] + ec + ["-keyout", clientKey, "-out", clientCSR, "-subj", "/CN=\(clientCommonName)"])
        try openssl(["x509", "-req", "-in", clientCSR, "-CA", ca, "-CAkey", caKey, "-CAcreateserial",
                     "-out", clientCert, "-days", "2", "-extfile", clientExt])
        return TestCertificates(directory: dir, caFile: ca, caKeyFile: caKey,
                                serverCertFile: serverCert, serverKeyFile: serverKey,
                                clientCertFile: clientCert, clientKeyFile: clientKey,
                                clientCommonName: clientCommonName)
    }

    public func remove() { directory.remove() }

    private static func openssl(_ arguments: [String]) throws {
        let result = try runCommand("openssl", arguments, timeout: 60)
        guard result.status == 0 else {
            throw TestSupportError.processFailed("openssl \(arguments.first ?? "") failed (\(result.status)): \(result.output.suffix(1000))")
        }
    }
}
