// swift-tools-version:6.1
import PackageDescription

// Module map (dependencies point one way only; LedgerCore has no I/O):
//   LedgerCore  <- Consensus
//   LedgerCore  <- LedgerStore (SQLite through the system library)
//   LedgerCore, Consensus, LedgerStore <- LedgerTestKit (simulator, fixtures)
//   LedgerCore  <- PeerNetwork (SwiftNIO TCP + mutual TLS between validators)
//   Consensus, LedgerStore, PeerNetwork <- LedgerNode (the shell that runs a replica)
//   LedgerNode  <- LedgerAPI (HTTP/JSON client API, Hummingbird)
//   everything  <- scf (the one executable)
let package = Package(
    name: "scf-ledger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "scf", targets: ["scf"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "Consensus", targets: ["Consensus"]),
        .library(name: "LedgerStore", targets: ["LedgerStore"]),
        .library(name: "PeerNetwork", targets: ["PeerNetwork"]),
        .library(name: "LedgerNode", targets: ["LedgerNode"]),
        .library(name: "LedgerAPI", targets: ["LedgerAPI"]),
        .library(name: "LedgerTestKit", targets: ["LedgerTestKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        // `scf bench`'s latency percentiles.
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .target(name: "LedgerCore", dependencies: ["COpenSSL", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Consensus", dependencies: ["LedgerCore"]),
        // A SQLite VFS that gathers the writes to a WAL file into few calls (docs/DECISIONS.md 40).
        .target(name: "CSQLiteVFS", dependencies: ["CSQLite"], linkerSettings: [.linkedLibrary("sqlite3")]),
        .target(name: "LedgerStore", dependencies: ["LedgerCore", "CSQLite", "CSQLiteVFS"]),
        .target(name: "PeerNetwork", dependencies: [
            "LedgerCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        .target(name: "LedgerNode", dependencies: ["LedgerCore", "Consensus", "LedgerStore", "PeerNetwork"]),
        .target(name: "LedgerAPI", dependencies: [
            "LedgerCore", "LedgerStore", "LedgerNode",
            .product(name: "Hummingbird", package: "hummingbird"),
        ]),
        .target(name: "LedgerTestKit", dependencies: ["LedgerCore", "Consensus", "LedgerStore"]),
        .executableTarget(name: "scf", dependencies: [
            "LedgerCore", "LedgerStore", "Consensus", "LedgerNode", "LedgerAPI", "PeerNetwork",
            .product(name: "Hummingbird", package: "hummingbird"),
            // The hidden `scf dev` tools (chain writer, store benchmark) drive LedgerTestKit's
            // workload generator; the crash-safety test kills `scf dev write-chain` mid-write.
            "LedgerTestKit",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Histogram", package: "hdrhistogram-swift"),
        ], swiftSettings: [.define("SCF_DEV_TOOLS")]),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore", "LedgerTestKit"],
                    resources: [.copy("Vectors")]),
        .testTarget(name: "LedgerStoreTests", dependencies: ["LedgerStore", "LedgerTestKit"]),
        // `scf bench`'s parts that need no processes (percentiles, SVG, /proc and metrics parsing, workload order).
        .testTarget(name: "BenchTests", dependencies: ["scf", "LedgerCore", "LedgerTestKit"]),
        .testTarget(name: "ConsensusTests", dependencies: ["Consensus", "LedgerTestKit"]),
        .testTarget(name: "LedgerNodeTests", dependencies: [
            "LedgerNode", "LedgerAPI", "LedgerTestKit",
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "PeerNetworkTests", dependencies: [
            "PeerNetwork", "LedgerTestKit",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOTLS", package: "swift-nio"),
            .product(name: "NIOTestUtils", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
    ]
)
