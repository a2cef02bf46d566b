import ArgumentParser
import Foundation
import LedgerCore
import PeerNetwork

struct NetworkCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "network",
        abstract: "Make the consortium's own certificate authority and the validators' TLS certificates.",
        subcommands: [CA.self, Issue.self]
    )

    struct CA: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ca",
            abstract: "Create the consortium CA (ca.crt, and ca.key with mode 0600) in a directory.")
        @Option(help: "Directory for ca.crt and ca.key.") var dir: String
        @Option(help: "The CA's common name.") var name: String = "SCF Consortium CA"

        func run() async throws {
            try await reportingErrors {
                let certificate = (dir as NSString).appendingPathComponent("ca.crt")
                let key = (dir as NSString).appendingPathComponent("ca.key")
                guard !FileManager.default.fileExists(atPath: key) else {
                    throw CLIError("\(key) already exists; a consortium has one CA, keep using it")
                }
                let ca = try ConsortiumCA.generate(name: name)
                try Files.write(Data(ca.certificatePEM.utf8), to: certificate)
                try Files.write(Data(ca.privateKeyPEM.utf8), to: key, secret: true)
                print("wrote \(certificate) and \(key) (keep the key offline; it admits nodes to the network)")
            }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue a validator's TLS certificate, signed by the CA.",
            discussion: """
            With --csr (a real consortium): answers the request a node made with `scf node init`; the node's
            TLS key never leaves it. Writes NAME.crt and ca.crt. Without --csr (the sample network on one
            machine): makes the key too and writes NAME.key (mode 0600) as well.
            """)
        @Option(help: "Directory holding ca.crt and ca.key.") var caDir: String
        @Option(help: "The node's certificate request (from `scf node init`).") var csr: String?
        @Option(help: "Without --csr: the validator's name in genesis (the certificate's common name).") var validator: String?
        @Option(help: "The node's IP address (repeat; 127.0.0.1 is always included).") var ip: [String] = []
        @Option(help: "The node's DNS name (repeat).") var dns: [String] = []
        @Option(help: "Where to write NAME.crt and a copy of ca.crt.") var out: String

        func run() async throws {
            try await reportingErrors {
                let ca = try ConsortiumCA.load(certificateFile: (caDir as NSString).appendingPathComponent("ca.crt"),
                                               privateKeyFile: (caDir as NSString).appendingPathComponent("ca.key"))
                func path(_ name: String) -> String { (out as NSString).appendingPathComponent(name) }
                if let csr {
                    let requestPEM = String(decoding: try Files.read(csr, what: "certificate request"), as: UTF8.self)
                    let certificatePEM = try ca.issueCertificate(forRequestPEM: requestPEM, ipAddresses: ip, dnsNames: dns)
                    let name = try NodeCredentials(certificatePEM: certificatePEM, privateKeyPEM: "", caCertificatePEM: try ca.certificatePEM).commonName()
                    if let validator, validator != name { throw CLIError("the request is for \(name), not \(validator)") }
                    try Files.write(Data(certificatePEM.utf8), to: path("\(name).crt"), overwrite: true)
                    try Files.write(Data(try ca.certificatePEM.utf8), to: path("ca.crt"), overwrite: true)
                    print("issued \(name)'s TLS certificate into \(out) (\(name).crt, ca.crt); send both back to the node")
                    return
                }
                guard let validator else { throw CLIError("give --csr (a node's request) or --validator (make the key here, sample networks only)") }
                let credentials = try ca.issueNodeCredentials(validatorName: validator, ipAddresses: ip, dnsNames: dns)
                try Files.write(Data(credentials.certificatePEM.utf8), to: path("\(validator).crt"), overwrite: true)
                try Files.write(Data(credentials.privateKeyPEM.utf8), to: path("\(validator).key"), secret: true, overwrite: true)
                try Files.write(Data(credentials.caCertificatePEM.utf8), to: path("ca.crt"), overwrite: true)
                print("issued \(validator)'s TLS key and certificate into \(out)")
            }
        }
    }
}
