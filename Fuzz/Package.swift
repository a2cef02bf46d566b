// swift-tools-version:6.1
import PackageDescription

// libFuzzer targets for the decoders that read untrusted bytes. A separate package so that the
// root package's `swift build` / `swift test` never see an executable without a `main` (libFuzzer
// provides it). Build and run with ./run.sh (it passes --sanitize=fuzzer --sanitize=address).
let package = Package(
    name: "scf-ledger-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "scf-ledger", path: ".."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        // Shared by the targets: invariant checks, seed corpus writing, sample chain fixtures.
        .target(name: "FuzzSupport", dependencies: [
            .product(name: "LedgerCore", package: "scf-ledger"),
            .product(name: "Consensus", package: "scf-ledger"),
            .product(name: "LedgerTestKit", package: "scf-ledger"),
        ]),
        // Peer framing (length prefix + caps) and the handshake messages.
        .executableTarget(name: "FuzzFrame", dependencies: [
            "FuzzSupport",
            .product(name: "PeerNetwork", package: "scf-ledger"),
            .product(name: "LedgerCore", package: "scf-ledger"),
            .product(name: "LedgerTestKit", package: "scf-ledger"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        // NodeMessage (consensus messages, transaction relay, block sync) and PersistentState.
        .executableTarget(name: "FuzzNodeMessage", dependencies: [
            "FuzzSupport",
            .product(name: "LedgerNode", package: "scf-ledger"),
            .product(name: "Consensus", package: "scf-ledger"),
            .product(name: "LedgerCore", package: "scf-ledger"),
            .product(name: "LedgerTestKit", package: "scf-ledger"),
        ]),
        // LedgerCore canonical decoders: SignedTransaction, Block, CommitCertificate, Genesis.
        .executableTarget(name: "FuzzTransaction", dependencies: [
            "FuzzSupport",
            .product(name: "LedgerCore", package: "scf-ledger"),
            .product(name: "LedgerTestKit", package: "scf-ledger"),
        ]),
        // The HTTP API's request bodies: submit, batch submit, eligibility (with bank policy JSON).
        .executableTarget(name: "FuzzAPIRequest", dependencies: [
            "FuzzSupport",
            .product(name: "LedgerAPI", package: "scf-ledger"),
            .product(name: "LedgerCore", package: "scf-ledger"),
        ]),
    ]
)
