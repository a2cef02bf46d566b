// swift-tools-version:6.1
import PackageDescription

// Module map (dependencies point one way only; LedgerCore has no I/O):
//   LedgerCore  <- Consensus
//   LedgerCore  <- LedgerStore (SQLite through the system library)
//   LedgerCore, Consensus, LedgerStore <- LedgerTestKit (simulator, fixtures)
//   everything  <- scf (the one executable)
let package = Package(
    name: "scf-ledger",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "scf", targets: ["scf"]),
        .library(name: "LedgerCore", targets: ["LedgerCore"]),
        .library(name: "Consensus", targets: ["Consensus"]),
        .library(name: "LedgerStore", targets: ["LedgerStore"]),
        .library(name: "LedgerTestKit", targets: ["LedgerTestKit"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", path: "Sources/CSQLite", pkgConfig: "sqlite3",
                       providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "COpenSSL", path: "Sources/COpenSSL", pkgConfig: "openssl",
                       providers: [.apt(["libssl-dev"])]),
        .target(name: "LedgerCore", dependencies: ["COpenSSL", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "Consensus", dependencies: ["LedgerCore"]),
        .target(name: "LedgerStore", dependencies: ["LedgerCore", "CSQLite"]),
        .target(name: "LedgerTestKit", dependencies: ["LedgerCore", "Consensus", "LedgerStore"]),
        .executableTarget(name: "scf", dependencies: [
            "LedgerCore", "LedgerStore", "Consensus",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .testTarget(name: "LedgerCoreTests", dependencies: ["LedgerCore", "LedgerTestKit"],
                    resources: [.copy("Vectors")]),
        .testTarget(name: "LedgerStoreTests", dependencies: ["LedgerStore", "LedgerTestKit"]),
        .testTarget(name: "ConsensusTests", dependencies: ["Consensus", "LedgerTestKit"]),
    ]
)
