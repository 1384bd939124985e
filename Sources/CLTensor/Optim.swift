import Foundation

/// A named tensor that may be trained. A frozen parameter has no gradient buffer at all, so
/// freezing saves the memory, and kernels skip its gradient (they receive nil).
public final class Parameter: @unchecked Sendable {
    public let name: String
    public let value: Tensor
    public private(set) var grad: Tensor?

    public init(_ name: String, _ value: Tensor, trainable: Bool = true) {
        self.name = name
        self.value = value
        self.grad = trainable ? Tensor(shape: value.shape) : nil
    }

    public var trainable: Bool { grad != nil }

    /// Freezing drops the gradient buffer; unfreezing allocates a zeroed one.
    public func setTrainable(_ on: Bool) {
        if on && grad == nil { grad = Tensor(shape: value.shape) }
        if !on { grad = nil }
    }

    public func zeroGrad() { grad?.zero() }
}

/// Parameters that share a learning rate and weight decay (e.g. a head trained faster than adapters).
public struct ParameterGroup {
    public var parameters: [Parameter]
    public var learningRate: Float
    public var weightDecay: Float
    /// What the group's rate is called where it is reported (result files record each named rate per
    /// epoch): methods name it after the option that sets it ("lr", "head_lr"); empty when unnamed.
    public var name: String
    public init(_ parameters: [Parameter], learningRate: Float, weightDecay: Float = 0, name: String = "") {
        self.parameters = parameters
        self.learningRate = learningRate
        self.weightDecay = weightDecay
        self.name = name
    }
}

/// Scales every trainable gradient so that their global L2 norm is at most `maxNorm`
/// (PyTorch's clip_grad_norm_). Returns the norm before clipping.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    var sq: Double = 0
    for p in parameters { if let g = p.grad { for i in 0..<g.count { sq += Double(g.data[i]) * Double(g.data[i]) } } }
    let norm = Float(sq.squareRoot())
    if norm > maxNorm {
        let s = maxNorm / (norm + 1e-6)
        for p in parameters { if let g = p.grad { for i in 0..<g.count { g.data[i] *= s } } }
    }
    return norm
}

/// An optimizer updates the trainable parameters of its groups from their gradients.
/// `lrScale` multiplies every group's learning rate (the schedule's factor for this step).
public protocol Optimizer: AnyObject {
    var groups: [ParameterGroup] { get set }
    func step(lrScale: Float)
}

extension Optimizer {
    public func zeroGrad() { for g in groups { for p in g.parameters { p.zeroGrad() } } }
    public var parameters: [Parameter] { groups.flatMap(\.parameters) }
}

/// SGD with momentum, PyTorch's formulation: b = mu * b + (g + wd * theta); theta -= lr * b
/// (nesterov: theta -= lr * (g + mu * b)). Weight decay here is coupled (added to the gradient).
public final class SGD: Optimizer {
    public var groups: [ParameterGroup]
    public let momentum: Float, nesterov: Bool
    private var buffers: [ObjectIdentifier: Tensor] = [:]

    public init(groups: [ParameterGroup], momentum: Float = 0, nesterov: Bool = false) {
        self.groups = groups; self.momentum = momentum; self.nesterov = nesterov
    }

    public func step(lrScale: Float = 1) {
        for group in groups {
            let lr = group.learningRate * lrScale, wd = group.weightDecay
            for p in group.parameters {
                guard let g = p.grad else { continue }
                let x = p.value.data, gd = g.data
                if momentum == 0 {
                    for i in 0..<g.count { x[i] -= lr * (gd[i] + wd * x[i]) }
                    continue
                }
                let id = ObjectIdentifier(p)
                let fresh = buffers[id] == nil
                let b = buffers[id] ?? Tensor(shape: g.shape)
                buffers[id] = b
                let bd = b.data
                for i in 0..<g.count {
                    let gi = gd[i] + wd * x[i]
                    bd[i] = fresh ? gi : momentum * bd[i] + gi   // PyTorch: first step copies the gradient
                    x[i] -= lr * (nesterov ? gi + momentum * bd[i] : bd[i])
                }
            }
        }
    }
}

/// Adam (Kingma and Ba 2015) and AdamW (Loshchilov and Hutter 2019), PyTorch's formulation.
/// Adam adds weight decay to the gradient (coupled, L2); AdamW decays the weight directly:
/// theta -= lr * wd * theta, before the Adam update. Bias correction as in the paper.
public final class Adam: Optimizer {
    public var groups: [ParameterGroup]
    public let beta1: Float, beta2: Float, eps: Float
    public let decoupledWeightDecay: Bool
    public private(set) var stepCount = 0
    private var moments: [ObjectIdentifier: (m: Tensor, v: Tensor)] = [:]

    public init(groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8,
                decoupledWeightDecay: Bool = false) {
        self.groups = groups; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.decoupledWeightDecay = decoupledWeightDecay
    }

    /// AdamW: Adam with decoupled weight decay (PyTorch's default decay for AdamW is 0.01).
    public static func adamW(groups: [ParameterGroup], beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8) -> Adam {
        Adam(groups: groups, beta1: beta1, beta2: beta2, eps: eps, decoupledWeightDecay: true)
    }

    public func step(lrScale: Float = 1) {
        stepCount += 1
        let c1 = 1 - powf(beta1, Float(stepCount)), c2 = 1 - powf(beta2, Float(stepCount))
        for group in groups {
            let lr = group.learningRate * lrScale, wd = group.weightDecay
            for p in group.parameters {
                guard let g = p.grad else { continue }
                let id = ObjectIdentifier(p)
                let state = moments[id] ?? (Tensor(shape: g.shape), Tensor(shape: g.shape))
                moments[id] = state
                let x = p.value.data, gd = g.data, m = state.m.data, v = state.v.data
                let (b1, b2, e, decoupled) = (beta1, beta2, eps, decoupledWeightDecay)
                let sqrtC2 = c2.squareRoot()
                for i in 0..<g.count {
                    var gi = gd[i]
                    if decoupled { x[i] -= lr * wd * x[i] } else { gi += wd * x[i] }
                    m[i] = b1 * m[i] + (1 - b1) * gi
                    v[i] = b2 * v[i] + (1 - b2) * gi * gi
                    // PyTorch: theta -= lr / c1 * m / (sqrt(v) / sqrt(c2) + eps)
                    x[i] -= lr / c1 * m[i] / (v[i].squareRoot() / sqrtC2 + e)
                }
            }
        }
    }
}

/// Learning-rate schedules as a factor of each group's base rate, for step t in 0..<total.
public enum LearningRateSchedule: Codable, Equatable, Sendable {
    case constant
    /// Linear warm-up from 0 over `warmup` steps, then cosine decay to `minFactor` at `total`.
    case warmupCosine(warmup: Int, total: Int, minFactor: Float)
    /// Linear warm-up, then multiply by `gamma` every `every` steps.
    case warmupStep(warmup: Int, every: Int, gamma: Float)

    public func factor(step t: Int) -> Float {
        switch self {
        case .constant: return 1
        case let .warmupCosine(warmup, total, minFactor):
            if t < warmup { return Float(t + 1) / Float(warmup) }
            let span = max(1, total - warmup)
            let progress = min(1, Float(t - warmup) / Float(span))
            return minFactor + (1 - minFactor) * 0.5 * (1 + cosf(Float.pi * progress))
        case let .warmupStep(warmup, every, gamma):
            if t < warmup { return Float(t + 1) / Float(warmup) }
            return powf(gamma, Float((t - warmup) / max(1, every)))
        }
    }
}
