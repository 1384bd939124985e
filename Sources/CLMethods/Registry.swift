import CLTensor
import CLModels
import Foundation

/// A method known by name: what `clbench list methods` prints and what suites refer to. Either a
/// method type (`of`) or a preset (`preset`): the same type under another name with other defaults.
public struct MethodRegistration: Sendable {
    public let name: String
    public let summary: String
    public let reference: String
    public let capabilities: MethodCapabilities
    /// Backbone features the method needs (`ContinualMethod.requires`).
    public let requires: Set<BackboneFeature>
    /// Default options as JSON values, keyed by option name (for a preset, with its values in).
    public let defaults: [String: JSONValue]
    public let help: [String: String]
    /// For a preset: the method it configures and the options it sets; nil for a method type.
    public let preset: Preset?
    /// The Swift type that implements it (module-qualified), for error messages.
    let typeName: String
    /// Options left out of resolved options while they hold their default (see
    /// `MethodOptions.omittedAtDefault`); only those whose default here is the type's own.
    let omittable: Set<String>
    /// Why a preset's options are invalid (reported when it is registered).
    let presetProblem: String?
    let factory: @Sendable (MethodContext, Data) throws -> any ContinualMethod
    /// Decodes options without building the method (validation before a suite runs).
    let decodeOptions: @Sendable (Data) throws -> Void

    /// What a preset is: the registered name of the method type it configures and the options it
    /// sets (its defaults differ from the method's in exactly these).
    public struct Preset: Sendable, Equatable {
        public let method: String
        public let options: [String: JSONValue]
    }

    /// The registration of a method type: name, docs, capabilities and options come from the type.
    public static func of<M: ContinualMethod>(_ type: M.Type) -> MethodRegistration {
        let defaults = (try? JSONValue.object(from: JSONEncoder().encode(M.Options()))) ?? [:]
        return MethodRegistration(name: M.name, summary: M.summary, reference: M.reference, capabilities: M.capabilities,
                                  requires: M.requires, defaults: defaults, help: M.Options.help, preset: nil, typeName: String(reflecting: M.self),
                                  omittable: M.Options.omittedAtDefault.intersection(defaults.keys), presetProblem: nil, factory: { ctx, json in
            try M(context: ctx, options: JSONDecoder().decode(M.Options.self, from: json))
        }, decodeOptions: { json in _ = try JSONDecoder().decode(M.Options.self, from: json) })
    }

    /// A preset: method type `type` registered again as `name`, with `options` as its defaults
    /// (overriding the type's). Suites and the command line use it like any method (`methods:
    /// [seqft]`, `method_options: {seqft: {...}}`); its cells are named, hashed and reported under
    /// `name`, and their resolved options record what the preset sets. A preset is not part of a
    /// suite's `methods: all`. Its options are checked when it is registered (`MethodRegistry`):
    /// an unknown key or a value of the wrong type is an error naming the preset.
    /// `reference` defaults to the method's.
    public static func preset<M: ContinualMethod>(_ name: String, of type: M.Type, options: [String: JSONValue],
                                                  summary: String, reference: String? = nil) -> MethodRegistration {
        let base = of(type)
        let defaults = base.defaults.merging(options) { _, preset in preset }
        var problem: String?
        if let k = options.keys.sorted().first(where: { base.defaults[$0] == nil }) {
            problem = "unknown option '\(k)' (options: \(base.defaults.keys.sorted().joined(separator: ", ")))"
        } else {
            do { try base.decodeOptions(JSONEncoder().encode(JSONValue.dictionary(defaults))) } catch let e as DecodingError {
                problem = "option \(describe(e))"
            } catch { problem = "\(error)" }
        }
        return MethodRegistration(name: name, summary: summary, reference: reference ?? base.reference, capabilities: base.capabilities,
                                  requires: base.requires, defaults: defaults, help: base.help, preset: Preset(method: M.name, options: options),
                                  typeName: "\(base.typeName) (preset '\(name)')",
                                  omittable: base.omittable.filter { defaults[$0] == base.defaults[$0] },
                                  presetProblem: problem, factory: base.factory, decodeOptions: base.decodeOptions)
    }

    /// Why the method cannot run on a backbone of `kind` ("needs input prompts"), nil when it can.
    public func unsupported(on kind: BackboneKind) -> String? {
        let missing = requires.subtracting(kind.supports).map(\.rawValue).sorted()
        return missing.isEmpty ? nil : "needs \(missing.joined(separator: " and ")), which a \(kind.rawValue) backbone does not have"
    }

    /// Resolves options: the defaults with `overrides` applied. Unknown keys and values of the wrong
    /// type are errors naming the method and the field. Options the type declares
    /// `omittedAtDefault` are left out while they hold their default, so a cell that does not use
    /// an option added later keeps its configuration hash; resolving the result again gives it back.
    public func resolveOptions(_ overrides: [String: JSONValue]) throws -> [String: JSONValue] {
        var merged = try mergedOptions(overrides)
        for k in omittable where merged[k] == defaults[k] { merged[k] = nil }
        return merged
    }

    /// Every option's value: the defaults with `overrides` applied, validated (what the method decodes).
    func mergedOptions(_ overrides: [String: JSONValue]) throws -> [String: JSONValue] {
        var merged = defaults
        for (k, v) in overrides {
            guard defaults[k] != nil else {
                throw MethodError("method '\(name)': unknown option '\(k)' (options: \(defaults.keys.sorted().joined(separator: ", ")))")
            }
            merged[k] = v
        }
        // Numbers must be finite (JSON cannot even encode nan or inf), and learning rates not negative.
        func check(_ key: String, _ v: JSONValue) throws {
            switch v {
            case .number(let x) where !x.isFinite:
                throw MethodError("method '\(name)': option '\(key)' must be a finite number, got \(x)")
            case .number(let x) where x < 0 && (key == "lr" || key.hasSuffix("_lr")):
                throw MethodError("method '\(name)': option '\(key)' is a learning rate and must not be negative, got \(x)")
            case .array(let xs): for x in xs { try check(key, x) }
            default: break
            }
        }
        for k in overrides.keys.sorted() { try check(k, merged[k]!) }
        do { try decodeOptions(JSONEncoder().encode(JSONValue.dictionary(merged))) } catch let e as DecodingError {
            // Foundation does not always say where decoding failed (2.5 for an Int has no coding
            // path on Linux), so find the override that fails on its own and name it.
            let failing = overrides.keys.sorted().first { k in
                var one = defaults
                one[k] = overrides[k]
                return (try? JSONEncoder().encode(JSONValue.dictionary(one))).map { (try? decodeOptions($0)) == nil } ?? true
            }
            if let k = failing, Self.codingPath(e).isEmpty {
                throw MethodError("method '\(name)': option '\(k)' cannot take the value \(overrides[k]!) (default: \(defaults[k]!))")
            }
            throw MethodError("method '\(name)': option \(Self.describe(e))")
        }
        return merged
    }

    /// A new instance with resolved options.
    public func make(context: MethodContext, options overrides: [String: JSONValue] = [:]) throws -> any ContinualMethod {
        let merged = try mergedOptions(overrides)
        let data = try JSONEncoder().encode(JSONValue.dictionary(merged))
        do { return try factory(context, data) } catch let e as DecodingError {
            throw MethodError("method '\(name)': option \(Self.describe(e))")
        }
    }

    static func codingPath(_ e: DecodingError) -> [CodingKey] {
        switch e {
        case let .typeMismatch(_, c), let .valueNotFound(_, c), let .dataCorrupted(c): return c.codingPath
        case let .keyNotFound(k, c): return c.codingPath + [k]
        @unknown default: return []
        }
    }

    public static func describe(_ e: DecodingError) -> String {
        func path(_ c: DecodingError.Context) -> String { c.codingPath.map(\.stringValue).joined(separator: ".") }
        func expected(_ t: Any.Type) -> String {
            let name = "\(t)"
            if name.hasPrefix("Dictionary") || name.contains("Mapping") || name.contains("KeyedDecodingContainer") { return "a mapping of keys to values" }
            if name.hasPrefix("Array") || name.contains("Sequence") || name.contains("UnkeyedDecodingContainer") { return "a list" }
            return name
        }
        switch e {
        case let .typeMismatch(t, c) where c.codingPath.isEmpty:
            return "the file's top level has the wrong type (expected \(expected(t)), such as 'name: ...' and 'methods: [...]' lines)"
        case let .typeMismatch(t, c): return "'\(path(c))' has the wrong type (expected \(expected(t)))"
        case let .valueNotFound(t, c): return "'\(path(c))' is missing a value (expected \(t))"
        case let .keyNotFound(k, _): return "'\(k.stringValue)' is missing"
        case let .dataCorrupted(c): return "'\(path(c))': \(c.debugDescription)"
        @unknown default: return "\(e)"
        }
    }
}

/// Methods by name. The built-in list is the one place a new method is registered (one line).
public struct MethodRegistry: Sendable {
    public private(set) var methods: [MethodRegistration] = []

    public init(_ registrations: [MethodRegistration]) throws {
        for r in registrations { try register(r) }
    }

    /// Adds a method; a name already taken is an error naming both types (two methods must never
    /// shadow each other, and a suite must mean the same method wherever it runs).
    public mutating func register(_ r: MethodRegistration) throws {
        if let problem = r.presetProblem, let preset = r.preset {
            throw MethodError("preset '\(r.name)' of method '\(preset.method)': \(problem)")
        }
        if let taken = methods.first(where: { $0.name == r.name }) {
            let types = taken.typeName == r.typeName ? "\(r.typeName), twice" : "\(taken.typeName) and \(r.typeName)"
            throw MethodError("two methods are registered as '\(r.name)' (\(types)); method names must be unique: give one another `static let name`")
        }
        methods.append(r)
    }

    public func named(_ name: String) throws -> MethodRegistration {
        guard let r = methods.first(where: { $0.name == name }) else {
            throw MethodError("unknown method '\(name)' (known: \(methods.map(\.name).joined(separator: ", ")))")
        }
        return r
    }

    /// Every registered name, presets included, in registration order (reports order rows by it).
    public var names: [String] { methods.map(\.name) }
    /// The names a suite's `methods: all` selects: every method that is not a preset.
    public var nonPresetNames: [String] { methods.filter { $0.preset == nil }.map(\.name) }

    /// The built-in methods. Adding a method: write its file under Methods/, add one line here.
    /// Presets follow the method they configure (docs/methods.md, "Presets").
    public static let builtin: MethodRegistry = try! MethodRegistry([
        .of(FineTune.self),
        .preset("seqft", of: FineTune.self, options: ["trainable": .string("full"), "lr": .number(1e-4)],
                summary: "SeqFT: sequential full fine-tuning of every block's weight matrices and biases and the head (finetune, trainable full, lr 1e-4)",
                reference: olora + " (baseline SeqFT)"),
        .preset("seqlora", of: FineTune.self, options: [:],
                summary: "SeqLoRA: one shared LoRA (q, v) trained on task after task, and the head (exactly finetune, under O-LoRA's name)",
                reference: olora + " (baseline SeqLoRA)"),
        .of(Joint.self),
        .of(NearestClassMean.self),
        .of(L2Regularization.self),
        .of(L2P.self),
        .of(OLoRA.self),
        .preset("inclora", of: OLoRA.self, options: ["lambda1": .number(0)],
                summary: "IncLoRA: a new LoRA per task, earlier ones frozen, all summed at inference, no orthogonality loss (olora, lambda1 0)",
                reference: olora + " (baseline IncLoRA)"),
        .of(HalfFineTuning.self),
        .of(Proteus.self),
        .of(StreamingLDA.self),
        .of(RanPAC.self),
    ])

    /// The paper whose results table names SeqFT, SeqLoRA and IncLoRA.
    static let olora = OLoRA.reference
}

/// A JSON value, for options read from suites and the command line.
public enum JSONValue: Codable, Sendable, Equatable, CustomStringConvertible {
    case number(Double), string(String), bool(Bool), array([JSONValue]), dictionary([String: JSONValue]), null

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let b = try? c.decode(Bool.self) { self = .bool(b) }
        else if let n = try? c.decode(Double.self) { self = .number(n) }
        else if let s = try? c.decode(String.self) { self = .string(s) }
        else if let a = try? c.decode([JSONValue].self) { self = .array(a) }
        else { self = .dictionary(try c.decode([String: JSONValue].self)) }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case let .number(n): try c.encode(n)
        case let .string(s): try c.encode(s)
        case let .bool(b): try c.encode(b)
        case let .array(a): try c.encode(a)
        case let .dictionary(d): try c.encode(d)
        case .null: try c.encodeNil()
        }
    }

    static func object(from data: Data) throws -> [String: JSONValue] {
        guard case let .dictionary(d) = try JSONDecoder().decode(JSONValue.self, from: data) else { return [:] }
        return d
    }

    /// A command-line value: a number, true/false, a JSON array or object, else a string.
    public static func parse(_ text: String) -> JSONValue {
        if let d = Double(text) { return .number(d) }
        if text == "true" || text == "false" { return .bool(text == "true") }
        if text.hasPrefix("[") || text.hasPrefix("{"), let v = try? JSONDecoder().decode(JSONValue.self, from: Data(text.utf8)) { return v }
        return .string(text)
    }

    public var description: String {
        switch self {
        case let .number(n): return n == n.rounded() && abs(n) < 1e15 ? String(Int(n)) : String(n)
        case let .string(s): return s
        case let .bool(b): return String(b)
        case let .array(a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case let .dictionary(d): return "{" + d.keys.sorted().map { "\($0): \(d[$0]!)" }.joined(separator: ", ") + "}"
        case .null: return "null"
        }
    }
}
