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
            abstract: "Issue a validator's TLS key and certificate (NAME.crt, NAME.key) signed by the CA.")
        @Option(help: "Directory holding ca.crt and ca.key.") var caDir: String
        @Option(help: "The validator's name in genesis (the certificate's common name).") var validator: String
        @Option(help: "The node's IP address (repeat; 127.0.0.1 is always included).") var ip: [String] = []
        @Option(help: "The node's DNS name (repeat).") var dns: [String] = []
        @Option(help: "Where to write NAME.crt, NAME.key and a copy of ca.crt.") var out: String

        func run() async throws {
            try await reportingErrors {
                let ca = try ConsortiumCA.load(certificateFile: (caDir as NSString).appendingPathComponent("ca.crt"),
                                               privateKeyFile: (caDir as NSString).appendingPathComponent("ca.key"))
                let credentials = try ca.issueNodeCredentials(validatorName: validator, ipAddresses: ip, dnsNames: dns)
                try Files.write(Data(credentials.certificatePEM.utf8), to: (out as NSString).appendingPathComponent("\(validator).crt"), overwrite: true)
                try Files.write(Data(credentials.privateKeyPEM.utf8), to: (out as NSString).appendingPathComponent("\(validator).key"),
                                secret: true, overwrite: true)
                try Files.write(Data(credentials.caCertificatePEM.utf8), to: (out as NSString).appendingPathComponent("ca.crt"), overwrite: true)
                print("issued \(validator)'s TLS certificate into \(out)")
            }
        }
    }
}
