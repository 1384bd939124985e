import CLTestSupport
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// Each baseline learns (well above chance on the synthetic scenario) and does what defines it.
final class BaselineTests: XCTestCase {
    func testFineTuneLearnsEachTaskAndForgets() throws {
        let (r, _) = try quickRun("finetune", options: ["lr": .number(3e-3), "head_lr": .number(3e-2)])
        // Right after each task, its own test data is classified well among all seen classes
        // (chance: 1 / (2 (t + 1))).
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.8, "task \(t) just learned: \(r.cil[t])") }
        // And it forgets: the first task's accuracy drops by the end (the lower bound's signature).
        XCTAssertLessThan(r.cil[4][0], r.cil[0][0] - 0.3, "finetune should forget task 0: \(r.cil.map { $0[0] })")
    }

    func testJointKeepsOldTasks() throws {
        let (r, _) = try quickRun("joint", options: ["lr": .number(3e-3), "head_lr": .number(3e-2)])
        let final = r.cil[4].reduce(0, +) / 5
        XCTAssertGreaterThan(final, 0.8, "joint trains on all data so far: \(r.cil[4])")
        XCTAssertEqual(r.trainSamples, [360, 720, 1080, 1440, 1800], "3 epochs over the union of tasks so far")
    }

    func testNCMLearnsWithoutGradientsAndPrototypesAreFeatureMeans() throws {
        let (r, m) = try quickRun("ncm")
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.8, "\(r.cil[4])")
        XCTAssertEqual(r.trainSamples, [120, 120, 120, 120, 120], "one statistics pass per task, no epochs")
        // Prototype of class 3 = mean feature of its training images, computed independently here.
        let ncm = m as! NearestClassMean
        let scenario = try synthetic()
        let refs = scenario.scenario.tasks[1].train.filter { $0.label == 3 }
        let images = Tensor(shape: [refs.count, 3, 16, 16])
        var rng = RNG(seed: 0)
        try scenario.fill(refs[...], split: .train, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: nil, rng: &rng, into: images)
        let f = try ncm.model.forward(.images(images))
        for i in 0..<32 {
            var mean: Float = 0
            for r in 0..<refs.count { mean += f.data[r * 32 + i] }
            XCTAssertEqual(ncm.prototypes.data[3 * 32 + i], mean / Float(refs.count), accuracy: 1e-5)
        }
    }
}

final class RegularisedBaselineTests: XCTestCase {
    func testL2LearnsAndPenaltyIsZeroAtPreviousWithCheckedGradient() throws {
        let (r, m) = try quickRun("l2", options: ["lr": .number(1e-3), "head_lr": .number(3e-2), "lambda": .number(0.5)])
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.7, "task \(t): \(r.cil[t])") }
        let l2 = m as! L2Regularization
        // At theta_prev the penalty is zero.
        l2.previous = l2.weights.map { $0.value.clone() }
        XCTAssertEqual(l2.penalty(accumulate: false), 0)
        // Away from it, its gradient matches central finite differences.
        var rng = RNG(seed: 3)
        for p in l2.weights { for i in 0..<p.value.count { p.value.data[i] += 0.05 * rng.normal() } }
        for p in l2.weights { p.zeroGrad() }
        let value = l2.penalty(accumulate: true)
        XCTAssertGreaterThan(value, 0)
        let p = l2.weights[1]
        for i in [0, 7, 100, p.value.count - 1] {
            let x = p.value.data[i], eps: Float = 1e-3
            p.value.data[i] = x + eps; let up = Double(l2.penalty(accumulate: false))
            p.value.data[i] = x - eps; let down = Double(l2.penalty(accumulate: false))
            p.value.data[i] = x
            XCTAssertEqual(Double(p.grad!.data[i]), (up - down) / Double(2 * eps), accuracy: 2e-3 * max(1, abs(Double(p.grad!.data[i]))))
        }
    }

    func testOLoRAKeepsEarlierLoRAsBitwiseAndOrthogonalityFalls() throws {
        let reg = try MethodRegistry.builtin.named("olora")
        let scenario = try synthetic()
        let m = try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 2), classCount: 10),
                             options: ["lr": .number(3e-3), "head_lr": .number(3e-2), "lambda1": .number(0.5)]) as! OLoRA
        let schedule = TrainingSchedule(epochs: 3, batchSize: 16, evalBatchSize: 64, augment: .none)
        let runner = try Runner(scenario: scenario, method: m, capabilities: reg.capabilities, schedule: schedule,
                                normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 2)
        // Drive tasks by hand to look inside between them.
        var snapshots: [[Tensor]] = []
        var orthogonality: [Float] = []
        for t in 0..<3 {
            let task = runner.info(t, trainCount: scenario.scenario.tasks[t].train.count)
            try m.beginTask(task)
            var rng = RNG(seed: UInt64(t))
            var first: Float?
            for epoch in 0..<3 {
                let refs = scenario.scenario.tasks[t].train
                var i = 0, step = 0
                while i < refs.count {
                    let j = min(i + 16, refs.count)
                    _ = try m.train(try runner.batch(refs[i..<j], split: .train, augment: nil, rng: &rng),
                                    step: TrainStep(epoch: epoch, step: step, globalStep: epoch * 8 + step), task: task)
                    if first == nil { first = m.lastOrthogonality }
                    i = j; step += 1
                }
            }
            if t > 0 { orthogonality.append(first! - m.penalty(accumulate: false) / 0.5) }
            // Earlier tasks' banks are bitwise what they were when their task ended.
            for (k, snap) in snapshots.enumerated() {
                let now = m.sites.flatMap { s in [s.banks[k].a.value, s.banks[k].b.value] }
                XCTAssertTrue(zip(now, snap).allSatisfy { $0.bitwiseEqual($1) }, "task \(k)'s LoRA moved during task \(t)")
            }
            snapshots.append(m.sites.flatMap { s in [s.banks[t].a.value.clone(), s.banks[t].b.value.clone()] })
        }
        XCTAssertTrue(orthogonality.allSatisfy { $0 > 0 }, "orthogonality loss falls during each later task: \(orthogonality)")
        XCTAssertEqual(m.sites.first?.banks.count, 3, "one bank per task, all active at inference")
        XCTAssertTrue(m.sites.allSatisfy { $0.banks.allSatisfy(\.active) })
    }

    func testOLoRALearns() throws {
        let (r, _) = try quickRun("olora", options: ["lr": .number(3e-3), "head_lr": .number(3e-2)])
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.7, "task \(t): \(r.cil[t])") }
    }

    func testHFTTrainsExactlyHalfAndLeavesTheRestBitwise() throws {
        let reg = try MethodRegistry.builtin.named("hft")
        let scenario = try synthetic()
        let backbone = testBackbone()
        let m = try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 4), classCount: 10),
                             options: ["lr": .number(1e-3)]) as! HalfFineTuning
        let runner = try Runner(scenario: scenario, method: m, capabilities: reg.capabilities,
                                schedule: TrainingSchedule(epochs: 1, batchSize: 16, evalBatchSize: 64, augment: .none),
                                normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 4)
        let d = backbone.config.dim
        var selections: [[[AdapterTarget]]] = []
        for t in 0..<2 {
            let task = runner.info(t, trainCount: scenario.scenario.tasks[t].train.count)
            try m.beginTask(task)
            selections.append(m.selection)
            func part(_ b: TransformerBlock, _ t: AdapterTarget) -> [Float] {
                switch t {
                case .q, .k, .v:
                    let i = [AdapterTarget.q, .k, .v].firstIndex(of: t)!
                    return Array(b.qkvW.value.toArray()[(i * d * d)..<((i + 1) * d * d)]) + Array(b.qkvB.value.toArray()[(i * d)..<((i + 1) * d)])
                case .out: return b.projW.value.toArray() + b.projB.value.toArray()
                case .fc1: return b.fc1W.value.toArray() + b.fc1B.value.toArray()
                case .fc2: return b.fc2W.value.toArray() + b.fc2B.value.toArray()
                case .expand, .depthwise, .project, .head: return []
                }
            }
            let before = backbone.blocks.map { b in Transformer.targets.map { part(b, $0) } }
            let others = [backbone.imageEmbedding!.patchW, backbone.imageEmbedding!.pos, backbone.normW!] + backbone.blocks.flatMap { [$0.ln1w, $0.ln2b] }
            let othersBefore = others.map { $0.value.clone() }
            var rng = RNG(seed: 9)
            let refs = scenario.scenario.tasks[t].train
            for s in 0..<4 {
                _ = try m.train(try runner.batch(refs[(s * 16)..<((s + 1) * 16)], split: .train, augment: nil, rng: &rng),
                                step: TrainStep(epoch: 0, step: s, globalStep: s), task: task)
            }
            for (bi, b) in backbone.blocks.enumerated() {
                let sel = m.selection[bi]
                XCTAssertEqual(sel.filter { [.q, .k, .v, .out].contains($0) }.count, 2, "2 of 4 attention matrices")
                XCTAssertEqual(sel.filter { [.fc1, .fc2].contains($0) }.count, 1, "1 of 2 MLP matrices: 3 of 6 in all")
                for (ti, target) in Transformer.targets.enumerated() {
                    let changed = part(b, target) != before[bi][ti]
                    XCTAssertEqual(changed, sel.contains(target), "task \(t) block \(bi) \(target): trained iff selected")
                }
            }
            XCTAssertTrue(zip(others, othersBefore).allSatisfy { $0.value.bitwiseEqual($1) }, "norms and embeddings frozen")
        }
        XCTAssertNotEqual(selections[0], selections[1], "a new seeded half per task")
    }

    func testHFTLearns() throws {
        let (r, _) = try quickRun("hft", options: ["lr": .number(1e-3), "head_lr": .number(3e-2)])
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.7, "task \(t): \(r.cil[t])") }
    }
}

final class L2PTests: XCTestCase {
    func testL2PLearnsAndSelectsPerSample() throws {
        let (r, m) = try quickRun("l2p", options: ["lr": .number(3e-2), "head_lr": .number(3e-2), "pool_size": .number(6),
                                                   "prompt_length": .number(2), "top_k": .number(2)], epochs: 5)
        // It learns each task (task-incremental accuracy right after the task; chance is 0.5). With the
        // reference's train mask and this random frozen backbone, new classes' logits do not rise above
        // old ones in class-incremental mode, so only the first task is checked there.
        for t in 0..<5 { XCTAssertGreaterThan(r.til[t][t], 0.75, "task \(t): \(r.til[t])") }
        XCTAssertGreaterThan(r.cil[0][0], 0.8)
        let l2p = m as! L2P
        // Selection over a batch mixing samples of every task.
        let scenario = try synthetic()
        let refs = scenario.scenario.tasks.flatMap { Array($0.test.prefix(2)) }
        let images = Tensor(shape: [refs.count, 3, 16, 16])
        var rng = RNG(seed: 0)
        try scenario.fill(refs[...], split: .test, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: nil, rng: &rng, into: images)
        let selection = try l2p.select(.images(images)).selection
        XCTAssertGreaterThan(Set(selection).count, 1, "different samples of one batch choose different prompts: \(selection)")
        // And a sample's choice does not depend on its batch-mates.
        let alone = Tensor(shape: [1, 3, 16, 16])
        alone.data.update(from: images.data + 3 * 768, count: 768)
        XCTAssertEqual(try l2p.select(.images(alone)).selection[0], selection[3])
    }
}

func randomTensor3(seed: UInt64) -> Tensor {
    var rng = RNG(seed: seed)
    let t = Tensor(shape: [4, 3, 16, 16])
    rng.fillNormal(t)
    return t
}

final class L2PPullLossTests: XCTestCase {
    func testPullLossGradientMatchesFiniteDifferences() throws {
        let reg = try MethodRegistry.builtin.named("l2p")
        let m = try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 10),
                             options: ["pool_size": .number(5), "prompt_length": .number(1), "top_k": .number(2), "pull_weight": .number(0.7)]) as! L2P
        let q = randomTensor([4, 32], seed: 6)   // queries: constants of the loss
        let selection = [[0, 3], [1, 3], [4, 2], [0, 1]]
        let f = GradientCheck(eps: 1e-3, atol: 1e-4, rtol: 1e-2, samples: 60).failure("l2p pull", inputs: [m.keys.value], forward: {
            let y = Tensor(shape: [1]); y[0] = m.pullLoss(query: q, selection: selection, accumulate: false); return y
        }, backward: { dout in
            m.keys.zeroGrad()
            _ = m.pullLoss(query: q, selection: selection, accumulate: true)
            let g = m.keys.grad!.clone()
            for i in 0..<g.count { g.data[i] *= dout[0] }
            return [g]
        })
        XCTAssertNil(f)
    }
}
