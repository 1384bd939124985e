import CInterrupt
import Foundation

/// A run stopped by SIGTERM or SIGINT: the task in progress was abandoned, and the checkpoint of the
/// last finished task (when the cell writes one) is intact. Commands exit with `exitStatus`.
public struct Interrupted: Error, CustomStringConvertible {
    public let signal: Int32
    public init(signal: Int32) { self.signal = signal }
    /// 128 + the signal: 143 for SIGTERM, 130 for SIGINT (what a shell reports for a process the signal killed).
    public var exitStatus: Int32 { 128 + signal }
    public var signalName: String { signal == SIGTERM ? "SIGTERM" : signal == SIGINT ? "SIGINT" : "signal \(signal)" }
    public var description: String { "interrupted by \(signalName)" }
}

/// SIGTERM and SIGINT become a flag that the runner looks at before every batch (training steps,
/// evaluation, `endTask`'s passes) and the suite between cells, instead of killing the process on the
/// spot. The work in progress is abandoned and `Interrupted` thrown; what is on disk (results, the
/// last task's checkpoint) is always whole, since every file is written atomically. Without
/// `install()` nothing is recorded and the signals keep their default action.
public enum Interrupt {
    /// Handles `signals` from now on (the commands that run cells call this first).
    public static func install(_ signals: [Int32] = [SIGTERM, SIGINT]) {
        for s in signals { _ = clbench_interrupt_install(s) }
    }

    /// The first signal received, nil when none.
    public static var pending: Int32? {
        let s = clbench_interrupt_pending()
        return s == 0 ? nil : s
    }

    /// Throws `Interrupted` once a signal has been received.
    public static func check() throws {
        if let s = pending { throw Interrupted(signal: s) }
    }

    /// Records `signal` as if it had arrived (tests; a program's own stop request).
    public static func request(_ signal: Int32) { clbench_interrupt_record(signal) }

    /// Forgets a received signal (tests that interrupt a run in process and then continue).
    public static func clear() { clbench_interrupt_clear() }
}
