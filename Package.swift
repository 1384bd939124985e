// swift-tools-version:6.0
// clbench: benchmarking continual fine-tuning methods on pretrained transformers, on the CPU.
// The module graph follows docs/architecture.md: C shims -> tensor engine -> models -> ... -> CLI.
import PackageDescription

// Compiler flags. Release builds use SwiftPM's own settings (-O, whole-module), which every kind of
// dependency accepts. Debug builds optimise the library targets too (`-O`), so `swift test` runs
// real-size checks in seconds; that needs `unsafeFlags`, which SwiftPM refuses in a version-pinned
// remote dependency (`.package(url:from:)`). So the flag is applied only where clbench is developed:
// as the root package or a local path dependency (Examples/CustomMethod), never in a remote checkout,
// which SwiftPM and Xcode place in a folder named `checkouts` (`.build/checkouts/<name>`).
// docs/architecture.md, "Compiler flags", has the measurements.
let remoteCheckout = Context.packageDirectory.split(separator: "/").dropLast().last == "checkouts"
let optimised: [SwiftSetting] = remoteCheckout ? [] : [.unsafeFlags(["-O"], .when(configuration: .debug))]
let optimisedC: [CSetting] = remoteCheckout ? [] : [.unsafeFlags(["-O2"], .when(configuration: .debug))]

let package = Package(
    name: "clbench",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "clbench", targets: ["clbench"]),
        .library(name: "CLTensor", targets: ["CLTensor"]),
        .library(name: "CLModels", targets: ["CLModels"]),
        .library(name: "CLData", targets: ["CLData"]),
        .library(name: "CLMethods", targets: ["CLMethods"]),
        .library(name: "CLBench", targets: ["CLBench"]),
        .library(name: "CLBenchCLI", targets: ["CLBenchCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.0"),
    ],
    targets: [
        // Debian's C libraries, as system-library targets (scripts/setup.sh installs them).
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", path: "Sources/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
                       providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CJPEG", path: "Sources/CJPEG", pkgConfig: "libjpeg",
                       providers: [.apt(["libjpeg62-turbo-dev"])]),
        .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
                       providers: [.apt(["libpng-dev"])]),
        // C, because libjpeg and libpng recover from errors only by longjmp, which Swift cannot do:
        // this shim owns the setjmp and returns an error code and message instead.
        .target(name: "CImageCodec", dependencies: ["CJPEG", "CPNG"], publicHeadersPath: "include",
                linkerSettings: [.linkedLibrary("jpeg"), .linkedLibrary("png16")]),

        // C, because these loops need vectorised exp/erf and per-CPU code (target_clones); see kernels.c.
        .target(name: "CKernels", publicHeadersPath: "include", cSettings: optimisedC),
        // C, because a signal handler must be async-signal-safe: it only records SIGTERM/SIGINT in a flag.
        .target(name: "CInterrupt", publicHeadersPath: "include"),
        .target(name: "CLTensor", dependencies: ["CBLAS", "CKernels"], swiftSettings: optimised),
        .target(name: "CLModels", dependencies: ["CLTensor", "CLData"], swiftSettings: optimised),
        .target(name: "CLData", dependencies: ["CLTensor", "CZlib", "CJPEG", "CPNG", "CImageCodec"], swiftSettings: optimised),
        .target(name: "CLMethods", dependencies: ["CBLAS", "CLTensor", "CLModels", "CLData"], swiftSettings: optimised),
        .target(name: "CLBench", dependencies: ["CLTensor", "CLModels", "CLData", "CLMethods", "CZstd", "CInterrupt", "Yams"], swiftSettings: optimised,
                plugins: ["BuildStamp"]),
        // The whole CLI as a library, so out-of-tree packages can run it with their own methods added.
        .target(name: "CLBenchCLI", dependencies: [
            "CLBench", "CLMethods", "CLTensor", "CLModels", "CLData",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: optimised),
        .executableTarget(name: "clbench", dependencies: ["CLBenchCLI"], swiftSettings: optimised),

        // `swift package --allow-writing-to-package-directory paper-tables`: docs/results.{md,tex} and
        // README.md's results blocks from results/; `swift package regression-check`: `clbench check`
        // of a fresh smoke run (or of given paths) against results/smoke. Both run the clbench tool.
        .plugin(name: "PaperTables",
                capability: .command(intent: .custom(verb: "paper-tables",
                                                     description: "Write docs/results.md and docs/results.tex (and README.md's results blocks) from results/"),
                                     permissions: [.writeToPackageDirectory(reason: "writes docs/results.md, docs/results.tex and README.md's generated results blocks")]),
                dependencies: ["clbench"]),
        // Build tool: stamps CLBench with the commit it is compiled from (`buildCommit`, recorded in
        // result files and checkpoints), so a binary keeps naming its own code when HEAD moves on.
        .plugin(name: "BuildStamp", capability: .buildTool()),
        .plugin(name: "RegressionCheck",
                capability: .command(intent: .custom(verb: "regression-check",
                                                     description: "clbench check of a fresh smoke run (or of given result paths) against results/smoke")),
                dependencies: ["clbench"]),

        .target(name: "CLTestSupport", dependencies: ["CLTensor"], path: "Tests/Support"),
        // The CLI with a method whose name clashes with a built-in, for CLITests (not a product).
        .executableTarget(name: "clashing-method-cli", dependencies: ["CLBenchCLI", "CLMethods", "CLTensor"],
                          path: "Tests/ClashingMethodCLI"),
        .testTarget(name: "CLTensorTests", dependencies: ["CLTensor", "CKernels", "CLTestSupport"]),
        .testTarget(name: "CLModelsTests", dependencies: ["CLModels", "CLData", "CLTensor", "CLTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "CLDataTests", dependencies: ["CLData", "CLTensor", "CZlib", "CImageCodec", "CPNG", "CLTestSupport"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "CLMethodsTests", dependencies: ["CLMethods", "CLBench", "CLModels", "CLData", "CLTensor", "CLTestSupport"]),
        .testTarget(name: "CLBenchTests", dependencies: ["CLBench", "CLBenchCLI", "CLMethods", "CLModels", "CLData", "CLTensor", "CZstd", "CLTestSupport"]),
    ]
)
