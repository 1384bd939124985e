import CLMethods
import CLModels
import Foundation

/// `clbench list methods`: every registered method with its one-line summary, paper reference,
/// declared capabilities, the backbone kinds it cannot run on and why, and options (sorted by name), each with its default and help line. A
/// preset also says which method it configures and what it sets (its defaults include those).
public enum MethodListing {
    public static func render(_ registry: MethodRegistry = .builtin) -> String {
        let presets = registry.methods.filter { $0.preset != nil }.count
        var out = "Registered methods (\(registry.methods.count)"
            + (presets > 0 ? ": \(registry.methods.count - presets) methods and \(presets) presets" : "") + ")\n"
        for m in registry.methods {
            out += "\n\(m.name)\n  \(m.summary)\n  reference: \(m.reference)\n"
            if let p = m.preset { out += "  preset of \(p.method): \(describe(p))\n" }
            out += "  capabilities: \(describe(m.capabilities))\n"
            for kind in BackboneKind.allCases {
                if let why = m.unsupported(on: kind) { out += "  unsupported on \(kind.rawValue) backbones: \(why)\n" }
            }
            if m.defaults.isEmpty {
                out += "  options: none\n"
                continue
            }
            out += "  options:\n"
            let width = m.defaults.keys.map(\.count).max() ?? 0
            for key in m.defaults.keys.sorted() {
                let name = key.padding(toLength: width, withPad: " ", startingAt: 0)
                out += "    \(name)  default \(m.defaults[key]!)  \(m.help[key] ?? "")\n"
            }
        }
        return out
    }

    /// What a preset sets: "trainable=full, lr=0.0001", or that it sets nothing (another name only).
    static func describe(_ p: MethodRegistration.Preset) -> String {
        (p.options.isEmpty ? "sets no option, the same configuration under another name"
            : "sets " + p.options.keys.sorted().map { "\($0)=\(p.options[$0]!)" }.joined(separator: ", "))
            + " (not in a suite's methods: all; name it)"
    }

    static func describe(_ c: MethodCapabilities) -> String {
        [c.needsTaskIDAtTest ? "needs the task id at test time" : "no task id at test time",
         c.retrievesTask ? "retrieves the task per sample" : nil,
         c.usesPastData ? "trains on earlier tasks' data (not rehearsal-free)" : "current task's data only",
         c.trainsWithGradients ? "trains batch by batch" : "no gradient steps (statistics only)"]
            .compactMap { $0 }.joined(separator: "; ")
    }
}
