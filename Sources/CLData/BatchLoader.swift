import CLTensor
import Foundation

/// Training-time augmentation, seeded: a random crop after zero-padding (torchvision's
/// RandomCrop(size, padding) pads with black pixels before normalisation) and a horizontal flip
/// with probability 1/2.
public struct Augmentation: Codable, Sendable, Equatable {
    public var cropPadding: Int = 4
    public var horizontalFlip: Bool = true
    public init(cropPadding: Int = 4, horizontalFlip: Bool = true) { self.cropPadding = cropPadding; self.horizontalFlip = horizontalFlip }
    enum CodingKeys: String, CodingKey { case cropPadding = "crop_padding", horizontalFlip = "horizontal_flip" }
    public static let none = Augmentation(cropPadding: 0, horizontalFlip: false)
}

/// A scenario's sources converted once to the backbone's input. Images: to its channels and size
/// (grey to RGB by replication, resized, antialiased when shrinking); batches then only normalise and
/// augment, reading the rows they need: the dataset is never copied per batch. Texts: tokenised once
/// (per tokenizer and maximum length, for the whole run); batches are padded to their longest text.
public final class PreparedScenario: @unchecked Sendable {
    public let scenario: Scenario
    public let size: Int, channels: Int
    let train: [ImageDataset]
    let test: [ImageDataset]
    /// Token ids per source and record ([CLS] ... [SEP]), and the pad id, for text scenarios.
    let trainTokens: [[[Int32]]], testTokens: [[[Int32]]]
    let padID: Int32

    public init(_ scenario: Scenario, size: Int, channels: Int = 3) throws {
        self.scenario = scenario; self.size = size; self.channels = channels
        var train: [ImageDataset] = [], test: [ImageDataset] = []
        for s in scenario.sources {
            guard let trainImages = s.train.images, let testImages = s.test.images else {
                throw DataError(path: scenario.name, message: "source \(s.name) holds \(s.train.modality), but the backbone takes images")
            }
            let tr = try Self.prepare(trainImages, size: size, channels: channels)
            let shared = s.train.files == s.test.files && s.train.count == s.test.count && !s.train.files.isEmpty
            train.append(tr)
            test.append(shared ? tr : try Self.prepare(testImages, size: size, channels: channels))
        }
        self.train = train; self.test = test
        trainTokens = []; testTokens = []; padID = 0
    }

    /// A text scenario tokenised by `tokenizer`, each text cut to `maxLength` word pieces.
    public init(_ scenario: Scenario, tokenizer: WordPieceTokenizer, maxLength: Int) throws {
        self.scenario = scenario; size = 0; channels = 0; train = []; test = []
        guard maxLength >= 2 else { throw DataError(path: scenario.name, message: "max_length must be at least 2 ([CLS] and [SEP]), got \(maxLength)") }
        var tr: [[[Int32]]] = [], te: [[[Int32]]] = []
        for s in scenario.sources {
            guard let trainTexts = s.train.texts, let testTexts = s.test.texts else {
                throw DataError(path: scenario.name, message: "source \(s.name) holds \(s.train.modality), but the backbone takes texts")
            }
            tr.append(tokenizer.encode(trainTexts.texts, maxLength: maxLength))
            te.append(tokenizer.encode(testTexts.texts, maxLength: maxLength))
        }
        trainTokens = tr; testTokens = te; padID = tokenizer.padID
    }

    static func prepare(_ d: ImageDataset, size: Int, channels: Int) throws -> ImageDataset {
        if d.channels == channels && d.height == size && d.width == size { return d }
        guard d.channels == channels || (d.channels == 1 && channels == 3) else {
            throw DataError(path: d.name, message: "cannot convert \(d.channels)-channel images to \(channels) channels")
        }
        var px = [UInt8]()
        px.reserveCapacity(d.count * channels * size * size)
        d.pixels.withUnsafeBufferPointer { src in
            for i in 0..<d.count {
                let img = UnsafeBufferPointer(rebasing: src[(i * d.imageBytes)..<((i + 1) * d.imageBytes)])
                var resized = (d.height == size && d.width == size) ? Array(img)
                    : ImageResize.resize(Array(img), channels: d.channels, height: d.height, width: d.width, toHeight: size, toWidth: size)
                if d.channels == 1 && channels == 3 { resized = ImageResize.greyToRGB(resized) }
                px += resized
            }
        }
        return ImageDataset(name: d.name, channels: channels, height: size, width: size, classes: d.classes,
                            classNames: d.classNames, pixels: px, labels: d.labels, files: d.files)
    }

    public enum Split: Sendable { case train, test }

    /// The model inputs for `refs`: normalised images [refs.count, C, S, S] (augmented when `augment`
    /// is given; `rng` draws the crops and flips). What the runner and consolidation passes feed methods.
    public func inputs(_ refs: ArraySlice<SampleRef>, split: Split, mean: [Float], std: [Float], augment: Augmentation?,
                       rng: inout RNG) throws -> ModelInput {
        if scenario.modality == "texts" {
            // Texts are not augmented; a batch is padded to its longest text.
            let pools = split == .train ? trainTokens : testTokens
            return .tokens(TokenBatch(padding: refs.map { pools[Int($0.source)][Int($0.index)] }, padID: padID))
        }
        let images = Tensor(shape: [refs.count, channels, size, size])
        try fill(refs, split: split, mean: mean, std: std, augment: augment, rng: &rng, into: images)
        return .images(images)
    }

    /// Writes the images of `refs` into `out` [refs.count, C, S, S], normalised as (x/255 - mean)/std,
    /// augmented when `augment` is given (then `rng` draws the crops and flips).
    public func fill(_ refs: ArraySlice<SampleRef>, split: Split, mean: [Float], std: [Float], augment: Augmentation?,
                     rng: inout RNG, into out: Tensor) throws {
        let s = size, c = channels, plane = s * s
        try out.expectShape([refs.count, c, s, s], op: "PreparedScenario.fill")
        guard mean.count == c, std.count == c else {
            throw DataError(path: scenario.name, message: "normalisation needs \(c) mean and std values")
        }
        let pools = split == .train ? train : test
        let pad = augment?.cropPadding ?? 0
        for (row, r) in refs.enumerated() {
            let d = pools[Int(r.source)]
            let dx = pad > 0 ? rng.int(below: 2 * pad + 1) - pad : 0
            let dy = pad > 0 ? rng.int(below: 2 * pad + 1) - pad : 0
            let flip = (augment?.horizontalFlip ?? false) && rng.int(below: 2) == 1
            d.pixels.withUnsafeBufferPointer { px in
                let src = px.baseAddress! + Int(r.index) * d.imageBytes
                let dst = out.data + row * c * plane
                for ch in 0..<c {
                    let scale = 1 / (255 * std[ch]), bias = -mean[ch] / std[ch]
                    for y in 0..<s {
                        let sy = y + dy
                        for x in 0..<s {
                            let xx = flip ? s - 1 - x : x
                            let sx = xx + dx
                            let v: UInt8 = (sy >= 0 && sy < s && sx >= 0 && sx < s) ? src[ch * plane + sy * s + sx] : 0
                            dst[ch * plane + y * s + x] = Float(v) * scale + bias
                        }
                    }
                }
            }
        }
    }
}
