import CLData
import Foundation

/// `clbench list scenarios`: every built-in scenario with its tasks, classes per task, sample
/// counts and data source, built from the data root when its data is there.
public enum ScenarioListing {
    public static func render(root: String) -> String {
        var out = "Built-in scenarios (data root: \(root))\n"
        out += "Every scenario takes scenario_options: {validation: SHARE}, the validation protocol: SHARE of each task's training records per class as its evaluation data, the test split unused.\n"
        for b in BuiltinScenarios.all {
            out += "\n\(b.name)\n  \(b.summary)\n"
            out += "  needs: \(b.needs.isEmpty ? "nothing (generated)" : b.needs.joined(separator: ", "))\n"
            if b.takesOrders { out += "  orders: \(b.ordersMeaning)\n" }
            if !b.optionKeys.isEmpty { out += "  scenario_options: \(b.optionKeys.joined(separator: ", "))\n" }
            do {
                let s = try b.build(root)
                out += "  \(s.tasks.count) tasks, \(s.classCount) classes, fingerprint \(s.fingerprint.prefix(16))\n"
                for src in s.sources { out += "  source \(src.name): \(src.splitRule)\n" }
                let rows = s.tasks.enumerated().map { i, t in
                    "    task \(i) \(t.name): \(t.classes.count) classes, \(t.train.count) train / \(t.test.count) test"
                }
                // Long, uniform scenarios: show the first two tasks and the last.
                out += (rows.count > 6 ? Array(rows.prefix(2)) + ["    ..."] + [rows.last!] : rows).joined(separator: "\n") + "\n"
            } catch {
                out += "  unavailable here: \(error)\n"
            }
        }
        return out
    }
}
