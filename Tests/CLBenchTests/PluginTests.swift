import CLBench
import CLBenchCLI
import CLMethods
import CLModels
import CLTensor
import XCTest

/// A method defined outside CLMethods, through the public API only, as a plugin package would.
final class OutOfTreeMethod: ContinualMethod {
    struct Options: MethodOptions {
        var strength: Float = 0.5
        var steps = 3
        init() {}
        static let help = ["strength": "how strong", "steps": "how many"]
    }
    static let name = "out-of-tree"
    static let summary = "test method defined outside CLMethods"
    static let reference = "none"
    static let capabilities = MethodCapabilities(trainsWithGradients: false)
    let classifier: Classifier
    init(context: MethodContext, options: Options) throws {
        var rng = context.rng
        classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &rng)
    }
    func beginTask(_ task: TaskInfo) throws {}
    func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] { [:] }
    func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}
    func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }
    func state() -> [String: Tensor] { namedValues(classifier.head.parameters) }
    func restore(_ state: [String: Tensor]) throws { try restoreValues(classifier.head.parameters, from: state, method: Self.name) }
    var parameterCounts: (trainable: Int, stored: Int) { (0, 0) }
}

/// Registration of extra methods (what `CLBenchCLI.main(extraMethods:)` does) and its errors.
final class PluginTests: XCTestCase {
    func testExtraMethodsJoinTheBuiltinsAndClashesNameBothTypes() throws {
        let r = try CLBenchCLI.makeRegistry(extraMethods: [.of(OutOfTreeMethod.self)])
        XCTAssertEqual(r.names, MethodRegistry.builtin.names + ["out-of-tree"])
        XCTAssertTrue(MethodListing.render(r).contains("\nout-of-tree\n  test method defined outside CLMethods\n"))

        XCTAssertThrowsError(try CLBenchCLI.makeRegistry(extraMethods: [.of(OutOfTreeMethod.self), .of(OutOfTreeMethod.self)])) { e in
            XCTAssertEqual("\(e)", "two methods are registered as 'out-of-tree' (CLBenchTests.OutOfTreeMethod, twice); method names must be unique: give one another `static let name`")
        }
        XCTAssertThrowsError(try CLBenchCLI.makeRegistry(extraMethods: [.of(FineTune.self)])) { e in
            XCTAssertTrue("\(e)".contains("two methods are registered as 'finetune' (CLMethods.FineTune, twice)"), "\(e)")
        }
    }

    func testSuiteOptionsThatDoNotDecodeNameTheField() throws {
        let registry = try CLBenchCLI.makeRegistry(extraMethods: [.of(OutOfTreeMethod.self)])
        func error(_ options: String) -> String {
            let yaml = """
            name: x
            scenarios: [synthetic]
            methods: [out-of-tree, ncm]
            seeds: [0]
            backbone: {scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}}
            schedule: {epochs: 1}
            method_options: {out-of-tree: \(options)}
            """
            do { _ = try SuiteFile.parse(yaml, source: "x.yaml").cells(registry: registry); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(error("{strength: 0.25, steps: 2}"), "")
        XCTAssertTrue(error("{steps: many}").contains("method 'out-of-tree': option 'steps' has the wrong type"), error("{steps: many}"))
        // Foundation on Linux gives no coding path for this one; the message still names the field and value.
        let fraction = error("{steps: 2.5}")
        XCTAssertTrue(fraction.contains("method 'out-of-tree': option 'steps'") && fraction.contains("2.5"), fraction)
        XCTAssertTrue(error("{strenght: 1}").contains("unknown option 'strenght' (options: steps, strength)"), error("{strenght: 1}"))
    }
}
