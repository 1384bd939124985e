import CBLAS
import Dispatch
import Foundation

/// A raw pointer that may cross into Dispatch workers. Each worker writes a disjoint range,
/// which is what makes the `@unchecked` promise true.
public struct SendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    public init(_ pointer: UnsafeMutablePointer<T>) { self.pointer = pointer }
}

public struct SendableConstPointer<T>: @unchecked Sendable {
    public let pointer: UnsafePointer<T>
    public init(_ pointer: UnsafePointer<T>) { self.pointer = pointer }
}

/// The threading policy, in one place.
///
/// OpenBLAS runs with ONE thread, always. Measured on the 2-core reference machine, two OpenBLAS
/// threads make a rank-8 LoRA GEMM ~6x slower and one attention head's GEMMs ~2.5x slower than one
/// thread, because OpenBLAS's thread hand-off costs more than such small products. So parallelism
/// comes from Dispatch workers, each calling single-threaded BLAS, chosen per call site:
/// - `gemm`: one large product (all tokens of a batch through a linear layer) is cut into
///   `threads` row (or column) panels, one worker each;
/// - `parallelFor`: many small independent products (attention per sample and head, LoRA per
///   bank) are spread over workers.
/// `threads` is set once at start-up (`--threads`, else `CLBENCH_THREADS`, else the core count).
public enum Compute {
    nonisolated(unsafe) private static var _threads: Int = {
        openblas_set_num_threads(1)
        if let env = ProcessInfo.processInfo.environment["CLBENCH_THREADS"], let n = Int(env), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// Number of Dispatch workers used by kernels.
    public static var threads: Int { _threads }

    /// Sets the worker count. Call before any work starts (not thread-safe by design).
    public static func setThreads(_ n: Int) {
        precondition(n >= 1, "threads must be >= 1")
        openblas_set_num_threads(1)
        _threads = n
    }

    /// A description of the BLAS library in use (it names the kernel), for result files.
    public static var blasConfiguration: String {
        _ = _threads
        guard let c = openblas_get_config() else { return "unknown" }
        return String(cString: c)
    }

    /// The OpenBLAS kernel family in use ("Haswell", "SkylakeX", ...), or nil when the BLAS is
    /// not an OpenBLAS DYNAMIC_ARCH build. Also part of `blasConfiguration`.
    public static var blasKernel: String? {
        _ = _threads
        typealias NameFn = @convention(c) () -> UnsafeMutablePointer<CChar>?
        guard let handle = dlopen(nil, RTLD_NOW), let sym = dlsym(handle, "gotoblas_corename") else { return nil }
        return unsafeBitCast(sym, to: NameFn.self)().map { String(cString: $0) }
    }

    /// A hint for the user when OpenBLAS runs its AVX2 kernels on a CPU with AVX-512, else nil.
    ///
    /// Debian's OpenBLAS is a DYNAMIC_ARCH build that picks kernels by CPU at load time, and
    /// OPENBLAS_CORETYPE overrides the choice. On the 2-core reference machine (AMD EPYC, family 26)
    /// its detection picks "Cooperlake" (AVX-512), but the machine's environment sets
    /// OPENBLAS_CORETYPE=Haswell (AVX2). Single-threaded SGEMM at the ViT's largest shape ran at 123
    /// GFLOP/s with the Haswell kernel and 238 with SkylakeX (`clbench bench --threads 1`'s
    /// blas_ceiling figure). clbench never changes the
    /// kernel itself: the choice is the user's, and results are bitwise reproducible for one
    /// kernel, not across kernels (CI pins the kernel its smoke baseline was made with).
    public static var blasKernelAdvice: String? {
        guard let kernel = blasKernel, ["haswell", "zen"].contains(kernel.lowercased()), cpuHasAVX512 else { return nil }
        let set = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0) is set)" } ?? ""
        return "OpenBLAS runs its AVX2 kernel (\(kernel))\(set) on a CPU with AVX-512; an AVX-512 kernel "
            + "(OPENBLAS_CORETYPE=SkylakeX, or unset to let OpenBLAS detect the CPU) was about 2x faster for the ViT's GEMMs "
            + "on the reference machine (docs/performance.md)"
    }

    /// AVX-512 F, CD, BW, DQ and VL, as the kernel lists them (only when the OS saves AVX-512 state).
    static var cpuHasAVX512: Bool {
        guard let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let line = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return false }
        let flags = Set(line.split(separator: " ").map(String.init))
        return ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"].allSatisfy(flags.contains)
    }

    /// Runs `body(i)` for i in 0..<count on up to `threads` workers. `body` must write disjoint memory.
    @inlinable
    public static func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            let box = UncheckedBox(escapable)
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                // Static, contiguous chunks: work items here are uniform in cost.
                let lo = count * w / workers, hi = count * (w + 1) / workers
                for i in lo..<hi { box.value(i) }
            }
        }
    }

    public struct UncheckedBox<T>: @unchecked Sendable {
        public let value: T
        public init(_ value: T) { self.value = value }
    }

    // MARK: GEMM

    /// Row-major C[M,N] = alpha * op(A) * op(B) + beta * C, single-threaded BLAS on this thread.
    /// op(A) is [M,K] (A stored [K,M] when transA), op(B) is [K,N] (B stored [N,K] when transB).
    @inlinable
    public static func sgemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        if m == 0 || n == 0 { return }
        cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
                    Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// The same product, cut into panels over workers when it is large enough to pay for it.
    /// Panels split M (rows of C) when M is the larger side, else N; each panel is an independent GEMM.
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let flops = 2 * m * n * k
        let workers = min(threads, flops >= 4_000_000 ? threads : 1)
        if workers <= 1 {
            sgemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                  b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let pa = SendableConstPointer(a), pb = SendableConstPointer(b), pc = SendablePointer(c)
        if m >= n {
            // Align panels to 16 rows so each worker's kernel tiles stay whole.
            let panels = workers
            DispatchQueue.concurrentPerform(iterations: panels) { w in
                let lo = (m * w / panels) & ~15, hi = w == panels - 1 ? m : (m * (w + 1) / panels) & ~15
                if hi <= lo { return }
                let aOff = transA ? lo : lo * lda
                sgemm(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha,
                      a: pa.pointer + aOff, lda: lda, b: pb.pointer, ldb: ldb, beta: beta,
                      c: pc.pointer + lo * ldc, ldc: ldc)
            }
        } else {
            let panels = workers
            DispatchQueue.concurrentPerform(iterations: panels) { w in
                let lo = (n * w / panels) & ~15, hi = w == panels - 1 ? n : (n * (w + 1) / panels) & ~15
                if hi <= lo { return }
                let bOff = transB ? lo * ldb : lo
                sgemm(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha,
                      a: pa.pointer, lda: lda, b: pb.pointer + bOff, ldb: ldb, beta: beta,
                      c: pc.pointer + lo, ldc: ldc)
            }
        }
    }
}
