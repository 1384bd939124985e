import CLBench
import CLData
import CLMethods
import CLModels
import CLTensor

/// A small random backbone (16x16 input) with weights large enough that its features separate the
/// synthetic scenario's clusters without training.
func testBackbone(seed: UInt64 = 11) -> Transformer {
    let m = Transformer(vit: ViTConfig(imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2, mlpDim: 64), seed: seed)
    var rng = RNG(seed: seed)
    for p in [m.imageEmbedding!.patchW, m.imageEmbedding!.pos] + m.blocks.flatMap({ [$0.qkvW, $0.projW, $0.fc1W, $0.fc2W] }) { rng.fillNormal(p.value, std: 0.15) }
    return m
}

/// The synthetic scenario (5 tasks x 2 classes, well separated).
func synthetic() throws -> PreparedScenario { try PreparedScenario(ScenarioBuilder.synthetic(), size: 16) }

/// Runs `name` with `options` through the synthetic scenario and returns the raw record.
func quickRun(_ name: String, options: [String: JSONValue] = [:], epochs: Int = 3, seed: UInt64 = 1) throws -> (RunRecord, any ContinualMethod) {
    let reg = try MethodRegistry.builtin.named(name)
    let scenario = try synthetic()
    let method = try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: seed), classCount: scenario.scenario.classCount),
                              options: options)
    let runner = try Runner(scenario: scenario, method: method, capabilities: reg.capabilities,
                            schedule: TrainingSchedule(epochs: epochs, batchSize: 16, evalBatchSize: 64, augment: .none),
                            normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: seed)
    return (try runner.run(), method)
}
