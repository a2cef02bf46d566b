import Foundation
import SwiftASN1
import Testing
import X509
@testable import PeerNetwork

@Suite struct ConsortiumCATests {
    @Test func nodeCertificateProfile() throws {
        let ca = try ConsortiumCA.generate(name: "Profile CA")
        let credentials = try ca.issueNodeCredentials(validatorName: "bank-a-node", ipAddresses: ["10.0.0.7", "::1"],
                                                      dnsNames: ["bank-a.example"])
        #expect(try credentials.commonName() == "bank-a-node")
        let certificate = try Certificate(pemEncoded: credentials.certificatePEM)
        #expect(certificate.issuer == ca.certificate.subject)
        #expect(ca.certificate.publicKey.isValidSignature(certificate.signature, for: certificate))

        let extensions = certificate.extensions
        #expect(try extensions.basicConstraints == .notCertificateAuthority)
        let usages = try #require(try extensions.extendedKeyUsage)
        #expect(usages.contains(.serverAuth) && usages.contains(.clientAuth))
        #expect(try extensions.keyUsage?.digitalSignature == true)
        let names = try #require(try extensions.subjectAlternativeNames)
        #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))))
        #expect(names.contains(.ipAddress(ASN1OctetString(contentBytes: [10, 0, 0, 7]))))
        #expect(names.contains(.dnsName("bank-a.example")))
        #expect(names.count == 4)

        #expect(try ca.certificate.extensions.basicConstraints == .isCertificateAuthority(maxPathLength: 0))
        #expect(throws: PeerNetworkError.self) { try ca.issueNodeCredentials(validatorName: "x", ipAddresses: ["not-an-ip"]) }
    }

    @Test func pemFilesRoundTripWithPrivateKeysUnreadableByOthers() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("scf-ca-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = { (name: String) in directory.appendingPathComponent(name).path }

        let ca = try ConsortiumCA.generate()
        try ca.write(certificateFile: path("ca.pem"), privateKeyFile: path("ca-key.pem"))
        let loaded = try ConsortiumCA.load(certificateFile: path("ca.pem"), privateKeyFile: path("ca-key.pem"))
        #expect(loaded.certificate == ca.certificate)

        let node = try loaded.issueNodeCredentials(validatorName: "node-0")
        try node.write(certificateFile: path("node.pem"), privateKeyFile: path("node-key.pem"), caCertificateFile: path("node-ca.pem"))
        let reread = try NodeCredentials.load(certificateFile: path("node.pem"), privateKeyFile: path("node-key.pem"),
                                              caCertificateFile: path("node-ca.pem"))
        #expect(reread == node)

        for keyFile in ["ca-key.pem", "node-key.pem"] {
            let mode = try FileManager.default.attributesOfItem(atPath: path(keyFile))[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        try node.write(directory: directory.path)
        #expect(try NodeCredentials.load(directory: directory.path) == node)
        #expect(throws: PeerNetworkError.self) { try NodeCredentials.load(certificateFile: path("missing.pem"), privateKeyFile: path("node-key.pem"), caCertificateFile: path("ca.pem")) }
    }

    @Test func mismatchedCAKeyIsRejected() throws {
        let one = try ConsortiumCA.generate(), two = try ConsortiumCA.generate()
        #expect(throws: PeerNetworkError.self) { try ConsortiumCA(certificatePEM: one.certificatePEM, privateKeyPEM: two.privateKeyPEM) }
    }

    @Test func peerAddressesParse() {
        #expect(PeerAddress("127.0.0.1:7001") == PeerAddress(host: "127.0.0.1", port: 7001))
        #expect(PeerAddress("bank-a.example:443") == PeerAddress(host: "bank-a.example", port: 443))
        #expect(PeerAddress("[::1]:7001") == PeerAddress(host: "::1", port: 7001))
        #expect(PeerAddress("[::1]:7001")?.description == "[::1]:7001")
        for bad in ["127.0.0.1", "::1:7001", ":7001", "host:", "host:70000", "[::1]7001", "host:x"] {
            #expect(PeerAddress(bad) == nil, "\(bad)")
        }
    }

    @Test func backoffDoublesUpToTheCap() {
        let backoff = ReconnectBackoff(initialDelay: .milliseconds(100), maximumDelay: .seconds(2), jitter: 0.2)
        #expect(backoff.delay(afterFailures: 0, jitterSample: 0) == .milliseconds(100))
        #expect(backoff.delay(afterFailures: 1, jitterSample: 0) == .milliseconds(200))
        #expect(backoff.delay(afterFailures: 3, jitterSample: 0) == .milliseconds(800))
        #expect(backoff.delay(afterFailures: 10, jitterSample: 0) == .seconds(2))
        #expect(backoff.delay(afterFailures: 1000, jitterSample: 1) == .seconds(2))
        #expect(backoff.delay(afterFailures: 0, jitterSample: 1) == .milliseconds(120))
        #expect(backoff.delay(afterFailures: 0, jitterSample: -1) == .milliseconds(80))
    }
}

