// swift-tools-version:6.1
import PackageDescription

// Micro-benchmarks for SCF Ledger (ordo-one/benchmark). A package of its own, next to the root
// package and depending on it by path, so that a plain `swift build` of the ledger never builds the
// benchmark framework, its malloc interposer or its plugin. Run from the repository root:
//   swift package --package-path Benchmarks benchmark
// (see docs/BENCHMARKS.md for the quick CI form).
let package = Package(
    name: "scf-ledger-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: "scf-ledger"),
        .package(url: "https://github.com/ordo-one/benchmark.git", exact: "1.38.1", traits: []),
    ],
    targets: [
        .executableTarget(
            name: "LedgerBenchmarks",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "LedgerCore", package: "scf-ledger"),
                .product(name: "LedgerStore", package: "scf-ledger"),
                .product(name: "LedgerTestKit", package: "scf-ledger"),
            ],
            path: "Benchmarks/LedgerBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
