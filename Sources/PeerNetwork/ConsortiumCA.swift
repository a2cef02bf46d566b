import Crypto
import Foundation
import SwiftASN1
import X509

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The consortium's own certificate authority: a P-256 key and a self-signed CA certificate that
/// issues one TLS certificate per validator node. Nodes trust this CA and nothing else.
///
/// Certificate profile:
/// - CA: subject CN = the consortium name, basicConstraints CA (critical, path length 0),
///   keyUsage keyCertSign + cRLSign (critical), subject key identifier; ECDSA P-256 / SHA-256.
/// - Node: subject CN = the validator's name in genesis (the handshake checks it), SAN with
///   127.0.0.1 plus the node's IP addresses and DNS names, basicConstraints not a CA (critical),
///   keyUsage digitalSignature (critical), extendedKeyUsage serverAuth + clientAuth (every node
///   both dials and accepts), authority and subject key identifiers, a random 20-byte serial;
///   ECDSA P-256 / SHA-256, signed by the CA.
///
/// The CA private key belongs offline with the consortium operator; nodes only need the CA
/// certificate and their own key and certificate.
public struct ConsortiumCA: Sendable {
    public let certificate: Certificate
    public let privateKey: Certificate.PrivateKey

    public init(certificate: Certificate, privateKey: Certificate.PrivateKey) throws {
        guard certificate.publicKey == privateKey.publicKey else {
            throw PeerNetworkError(.invalidCredentials, "the CA private key does not match the CA certificate")
        }
        self.certificate = certificate
        self.privateKey = privateKey
    }

    /// Makes a new CA key and self-signed certificate.
    /// - Parameters:
    ///   - name: the CA's common name.
    ///   - notValidBefore: start of validity; defaults to an hour ago so small clock skew does not matter.
    ///   - validity: seconds the CA certificate is valid (default ten years).
    public static func generate(name: String = "SCF Consortium CA", notValidBefore: Date = Date().addingTimeInterval(-3600),
                                validity: TimeInterval = 10 * 365 * 86_400) throws -> ConsortiumCA {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let subject = try DistinguishedName { CommonName(name) }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: key.publicKey)
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidBefore.addingTimeInterval(validity),
            issuer: subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: key)
        return try ConsortiumCA(certificate: certificate, privateKey: key)
    }

    /// Issues a node's TLS key and certificate. The CA sees the node's private key: fine for a
    /// sample network on one machine; a real node makes its own key and a request
    /// (``makeCertificateRequest(validatorName:)``) and the CA answers it (``issueCertificate(forRequestPEM:ipAddresses:dnsNames:notValidBefore:validity:)``).
    /// - Parameters:
    ///   - validatorName: the validator's name in genesis; becomes the subject common name.
    ///   - ipAddresses: the node's IPv4/IPv6 addresses; 127.0.0.1 is always included.
    ///   - dnsNames: the node's DNS names.
    public func issueNodeCredentials(validatorName: String, ipAddresses: [String] = [], dnsNames: [String] = [],
                                     notValidBefore: Date = Date().addingTimeInterval(-3600),
                                     validity: TimeInterval = 2 * 365 * 86_400) throws -> NodeCredentials {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let nodeCertificate = try certificate(for: key.publicKey, validatorName: validatorName, ipAddresses: ipAddresses,
                                              dnsNames: dnsNames, notValidBefore: notValidBefore, validity: validity)
        return NodeCredentials(
            certificatePEM: try nodeCertificate.serializeAsPEM().pemString,
            privateKeyPEM: try key.serializeAsPEM().pemString,
            caCertificatePEM: try certificatePEM)
    }

    /// A node's side of issuance: a new TLS private key (PEM, keep it 0600 on the node) and a
    /// certificate signing request naming the validator, for the CA.
    public static func makeCertificateRequest(validatorName: String) throws -> (privateKeyPEM: String, requestPEM: String) {
        guard !validatorName.isEmpty else {
            throw PeerNetworkError(.invalidCredentials, "a certificate request needs the validator's name from genesis")
        }
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let request = try CertificateSigningRequest(version: .v1, subject: try DistinguishedName { CommonName(validatorName) },
                                                    privateKey: key, attributes: CertificateSigningRequest.Attributes(),
                                                    signatureAlgorithm: .ecdsaWithSHA256)
        return (try key.serializeAsPEM().pemString, try request.serializeAsPEM().pemString)
    }

    /// The CA's side: checks the request's signature and issues a node certificate for its key and
    /// common name, with the node's addresses. Returns the certificate PEM.
    public func issueCertificate(forRequestPEM requestPEM: String, ipAddresses: [String] = [], dnsNames: [String] = [],
                                 notValidBefore: Date = Date().addingTimeInterval(-3600),
                                 validity: TimeInterval = 2 * 365 * 86_400) throws -> String {
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: requestPEM)
        } catch {
            throw PeerNetworkError(.invalidCredentials, "not a certificate signing request: \(error)")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw PeerNetworkError(.invalidCredentials, "the certificate request's signature does not verify; ask the node to make a new one")
        }
        guard let name = request.subject.commonName else {
            throw PeerNetworkError(.invalidCredentials, "the certificate request names no validator (no common name)")
        }
        return try certificate(for: request.publicKey, validatorName: name, ipAddresses: ipAddresses, dnsNames: dnsNames,
                               notValidBefore: notValidBefore, validity: validity).serializeAsPEM().pemString
    }

    /// The node certificate profile: CN = validator name, SANs, not a CA, digitalSignature,
    /// serverAuth + clientAuth, key identifiers, ECDSA-SHA256 by the CA.
    func certificate(for publicKey: Certificate.PublicKey, validatorName: String, ipAddresses: [String], dnsNames: [String],
                     notValidBefore: Date, validity: TimeInterval) throws -> Certificate {
        guard !validatorName.isEmpty else {
            throw PeerNetworkError(.invalidCredentials, "a node certificate needs the validator's name from genesis")
        }
        var names: [GeneralName] = []
        var seenIPs: [[UInt8]] = []
        for text in ["127.0.0.1"] + ipAddresses {
            guard let bytes = ipAddressBytes(text) else {
                throw PeerNetworkError(.invalidCredentials, "\"\(text)\" is not an IPv4 or IPv6 address")
            }
            if !seenIPs.contains(bytes) {
                seenIPs.append(bytes)
                names.append(.ipAddress(ASN1OctetString(contentBytes: bytes[...])))
            }
        }
        for name in dnsNames where !name.isEmpty { names.append(.dnsName(name)) }
        let subject = try DistinguishedName { CommonName(validatorName) }
        let issuerKeyID = try certificate.extensions.subjectKeyIdentifier?.keyIdentifier
            ?? SubjectKeyIdentifier(hash: certificate.publicKey).keyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth, .clientAuth])
            SubjectAlternativeNames(names)
            SubjectKeyIdentifier(hash: publicKey)
            AuthorityKeyIdentifier(keyIdentifier: issuerKeyID)
        }
        return try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
            notValidBefore: notValidBefore, notValidAfter: notValidBefore.addingTimeInterval(validity),
            issuer: certificate.subject, subject: subject, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: extensions, issuerPrivateKey: privateKey)
    }

    // MARK: - PEM

    public var certificatePEM: String {
        get throws { try certificate.serializeAsPEM().pemString }
    }
    public var privateKeyPEM: String {
        get throws { try privateKey.serializeAsPEM().pemString }
    }

    public init(certificatePEM: String, privateKeyPEM: String) throws {
        do {
            try self.init(certificate: Certificate(pemEncoded: certificatePEM),
                          privateKey: Certificate.PrivateKey(pemEncoded: privateKeyPEM))
        } catch let error as PeerNetworkError {
            throw error
        } catch {
            throw PeerNetworkError(.invalidCredentials, "cannot read the CA certificate or key: \(error)")
        }
    }

    /// Reads a CA written by ``write(certificateFile:privateKeyFile:)``.
    public static func load(certificateFile: String, privateKeyFile: String) throws -> ConsortiumCA {
        try ConsortiumCA(certificatePEM: readTextFile(certificateFile), privateKeyPEM: readTextFile(privateKeyFile))
    }

    /// Writes the certificate (mode 0644) and the private key (mode 0600) as PEM.
    public func write(certificateFile: String, privateKeyFile: String) throws {
        try writeTextFile(certificateFile, certificatePEM, mode: 0o644)
        try writeTextFile(privateKeyFile, privateKeyPEM, mode: 0o600)
    }
}

/// A node's TLS material: its key and certificate and the consortium CA certificate it trusts,
/// all as PEM text.
public struct NodeCredentials: Sendable, Hashable {
    public var certificatePEM: String
    public var privateKeyPEM: String
    public var caCertificatePEM: String

    public init(certificatePEM: String, privateKeyPEM: String, caCertificatePEM: String) {
        self.certificatePEM = certificatePEM
        self.privateKeyPEM = privateKeyPEM
        self.caCertificatePEM = caCertificatePEM
    }

    /// Reads the three PEM files.
    public static func load(certificateFile: String, privateKeyFile: String, caCertificateFile: String) throws -> NodeCredentials {
        NodeCredentials(certificatePEM: try readTextFile(certificateFile), privateKeyPEM: try readTextFile(privateKeyFile),
                        caCertificatePEM: try readTextFile(caCertificateFile))
    }

    /// Writes the three PEM files; the key file gets mode 0600.
    public func write(certificateFile: String, privateKeyFile: String, caCertificateFile: String) throws {
        try writeTextFile(certificateFile, certificatePEM, mode: 0o644)
        try writeTextFile(privateKeyFile, privateKeyPEM, mode: 0o600)
        try writeTextFile(caCertificateFile, caCertificatePEM, mode: 0o644)
    }

    /// File names in a node's TLS directory (see ``load(directory:)``).
    public static let certificateFileName = "node.pem"
    public static let privateKeyFileName = "node-key.pem"
    public static let caCertificateFileName = "ca.pem"

    /// Reads `node.pem`, `node-key.pem` and `ca.pem` from `directory`.
    public static func load(directory: String) throws -> NodeCredentials {
        try load(certificateFile: directory + "/" + certificateFileName, privateKeyFile: directory + "/" + privateKeyFileName,
                 caCertificateFile: directory + "/" + caCertificateFileName)
    }

    /// Writes `node.pem`, `node-key.pem` (mode 0600) and `ca.pem` into `directory`, which must exist.
    public func write(directory: String) throws {
        try write(certificateFile: directory + "/" + Self.certificateFileName,
                  privateKeyFile: directory + "/" + Self.privateKeyFileName,
                  caCertificateFile: directory + "/" + Self.caCertificateFileName)
    }

    /// The node certificate's subject common name (the validator name it was issued for).
    public func commonName() throws -> String {
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: certificatePEM)
        } catch {
            throw PeerNetworkError(.invalidCredentials, "cannot read the node certificate: \(error)")
        }
        guard let name = certificate.subject.commonName else {
            throw PeerNetworkError(.invalidCredentials, "the node certificate has no subject common name")
        }
        return name
    }
}

extension DistinguishedName {
    /// The last (most specific) common name, as TLS libraries read it.
    var commonName: String? {
        var found: String?
        for rdn in self {
            for attribute in rdn where attribute.type == .RDNAttributeType.commonName {
                if let value = String(attribute.value) { found = value }
            }
        }
        return found
    }
}

/// The subject common name of a DER certificate, nil when it has none or does not parse.
func commonName(ofDERCertificate der: [UInt8]) -> String? {
    (try? Certificate(derEncoded: der))?.subject.commonName
}

/// The 4 or 16 bytes of an IP address in text form, nil when it is not one.
func ipAddressBytes(_ text: String) -> [UInt8]? {
    var v4 = in_addr()
    if inet_pton(AF_INET, text, &v4) == 1 {
        return withUnsafeBytes(of: &v4) { Array($0) }
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, text, &v6) == 1 {
        return withUnsafeBytes(of: &v6) { Array($0) }
    }
    return nil
}

func readTextFile(_ path: String) throws -> String {
    do {
        return try String(contentsOfFile: path, encoding: .utf8)
    } catch {
        throw PeerNetworkError(.invalidCredentials, "cannot read \(path): \(error.localizedDescription)")
    }
}

/// Writes `text` to `path` through a temporary file created with `mode`, then renames it, so a
/// key file is never readable by others, not even for a moment, and never half-written.
func writeTextFile(_ path: String, _ text: String, mode: mode_t) throws {
    let temporary = path + ".tmp-\(getpid())"
    let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC, mode)
    guard fd >= 0 else {
        throw PeerNetworkError(.invalidCredentials, "cannot create \(temporary): \(String(cString: strerror(errno)))")
    }
    let bytes = Array(text.utf8)
    var written = 0
    while written < bytes.count {
        let result = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, bytes.count - written) }
        if result < 0 {
            if errno == EINTR { continue }
            let message = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            throw PeerNetworkError(.invalidCredentials, "cannot write \(temporary): \(message)")
        }
        written += result
    }
    _ = fchmod(fd, mode)
    _ = fsync(fd)
    close(fd)
    guard rename(temporary, path) == 0 else {
        let message = String(cString: strerror(errno))
        unlink(temporary)
        throw PeerNetworkError(.invalidCredentials, "cannot move \(temporary) to \(path): \(message)")
    }
}
