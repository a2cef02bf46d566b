import Foundation
import PeerNetwork
import Testing

/// A node makes its own TLS key and a request; the CA answers it without ever seeing the key.
@Suite struct CertificateRequestTests {
    @Test func aRequestIsAnsweredWithACertificateForTheNodesOwnKey() throws {
        let ca = try ConsortiumCA.generate()
        let (keyPEM, requestPEM) = try ConsortiumCA.makeCertificateRequest(validatorName: "node-2")
        let certificatePEM = try ca.issueCertificate(forRequestPEM: requestPEM, ipAddresses: ["198.18.0.2"])
        let credentials = NodeCredentials(certificatePEM: certificatePEM, privateKeyPEM: keyPEM, caCertificatePEM: try ca.certificatePEM)
        #expect(try credentials.commonName() == "node-2")
        #expect(!requestPEM.contains(keyPEM))
    }

    @Test func aTamperedOrForeignRequestIsRefused() throws {
        let ca = try ConsortiumCA.generate()
        #expect(throws: PeerNetworkError.self) { try ca.issueCertificate(forRequestPEM: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n") }
        let (_, requestPEM) = try ConsortiumCA.makeCertificateRequest(validatorName: "node-1")
        var lines = requestPEM.split(separator: "\n").map(String.init)
        // Flip one character in the middle of the base64 body.
        let middle = lines.count / 2
        var characters = Array(lines[middle])
        characters[10] = characters[10] == "A" ? "B" : "A"
        lines[middle] = String(characters)
        #expect(throws: (any Error).self) { try ca.issueCertificate(forRequestPEM: lines.joined(separator: "\n") + "\n") }
    }
}
