import XCTest
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

final class RegistryTests: XCTestCase {
    func testBuiltinNamesAndDocs() throws {
        let reg = MethodRegistry.builtin
        XCTAssertEqual(Set(["finetune", "joint", "ncm"]).subtracting(reg.names), [])
        for m in reg.methods {
            XCTAssertFalse(m.summary.isEmpty, m.name)
            XCTAssertFalse(m.reference.isEmpty, m.name)
            for k in m.defaults.keys { XCTAssertNotNil(m.help[k], "\(m.name): option '\(k)' has no help line") }
        }
        XCTAssertEqual(try reg.named("finetune").defaults["rank"], .number(8))
        XCTAssertTrue(try reg.named("joint").capabilities.usesPastData)
        XCTAssertFalse(try reg.named("ncm").capabilities.trainsWithGradients)
    }

    func testDuplicateNamesAreRejected() {
        XCTAssertThrowsError(try MethodRegistry([.of(FineTune.self), .of(FineTune.self)])) { e in
            XCTAssertTrue("\(e)".contains("two methods are registered as 'finetune'"), "\(e)")
        }
    }

    func testOptionErrorsNameTheField() throws {
        let reg = try MethodRegistry.builtin.named("finetune")
        let ctx = MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 4)
        XCTAssertThrowsError(try reg.make(context: ctx, options: ["rnak": .number(4)])) { e in
            XCTAssertTrue("\(e)".contains("unknown option 'rnak'"), "\(e)")
            XCTAssertTrue("\(e)".contains("rank"), "the valid options are listed: \(e)")
        }
        XCTAssertThrowsError(try reg.make(context: ctx, options: ["rank": .string("eight")])) { e in
            XCTAssertTrue("\(e)".contains("'rank' has the wrong type"), "\(e)")
        }
        XCTAssertThrowsError(try reg.make(context: ctx, options: ["targets": .array([.string("qq")])])) { e in
            XCTAssertTrue("\(e)".contains("'targets' has 'qq'"), "\(e)")
        }
        let m = try reg.make(context: ctx, options: ["rank": .number(2)]) as! FineTune
        XCTAssertEqual(m.options.rank, 2)
        XCTAssertThrowsError(try MethodRegistry.builtin.named("nope")) { e in XCTAssertTrue("\(e)".contains("known: finetune"), "\(e)") }
    }

    func testCommandLineValues() {
        XCTAssertEqual(JSONValue.parse("3"), .number(3))
        XCTAssertEqual(JSONValue.parse("true"), .bool(true))
        XCTAssertEqual(JSONValue.parse("[\"q\",\"v\"]"), .array([.string("q"), .string("v")]))
        XCTAssertEqual(JSONValue.parse("cosine"), .string("cosine"))
    }

    /// Non-finite numbers and negative learning rates are refused by name, before anything runs.
    func testNonFiniteAndNegativeLearningRatesAreNamed() throws {
        let reg = try MethodRegistry.builtin.named("finetune")
        for (value, expected) in [(Double.nan, "'lr' must be a finite number"), (.infinity, "'lr' must be a finite number"),
                                  (-0.1, "'lr' is a learning rate and must not be negative")] {
            XCTAssertThrowsError(try reg.resolveOptions(["lr": .number(value)])) { XCTAssertTrue("\($0)".contains(expected), "\($0)") }
        }
        XCTAssertThrowsError(try reg.resolveOptions(["head_lr": .number(-1)])) { XCTAssertTrue("\($0)".contains("'head_lr'"), "\($0)") }
        XCTAssertNoThrow(try reg.resolveOptions(["lr": .number(0.5)]))
    }
}
