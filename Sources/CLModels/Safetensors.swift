import CLData
import CLTensor
import Foundation

/// Errors reading or writing safetensors files; each names the file (and tensor) at fault.
public struct SafetensorsError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// A safetensors file, memory-mapped. Tensors are converted to Float32 on demand (F32, F16, BF16, F64).
/// Integer and boolean entries (HF's `embeddings.position_ids` buffer, say) are listed but cannot be
/// read as weights.
/// Layout: u64 little-endian header length N, N bytes of JSON header, then the data section.
public final class SafetensorsFile: @unchecked Sendable {
    public enum DType: String, Sendable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
        case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"
        var size: Int {
            switch self {
            case .f64, .i64: 8
            case .f32, .i32: 4
            case .f16, .bf16, .i16: 2
            case .i8, .u8, .bool: 1
            }
        }
        var isFloat: Bool { [.f32, .f16, .bf16, .f64].contains(self) }
    }

    public struct Entry: Sendable {
        public let name: String
        public let dtype: DType
        public let shape: [Int]
        public let begin: Int
        public let end: Int
    }

    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let data: Data       // memory-mapped, so large checkpoints are not read up front
    private let dataStart: Int

    public var names: [String] { entries.keys.sorted() }

    public init(path: String) throws {
        self.path = path
        func fail(_ m: String) -> SafetensorsError { SafetensorsError(path: path, message: m) }
        guard FileManager.default.fileExists(atPath: path) else { throw fail("file not found") }
        let d: Data
        do { d = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw fail("cannot read: \(error.localizedDescription)")
        }
        guard d.count >= 8 else { throw fail("file is \(d.count) bytes, shorter than the 8-byte header length") }
        let n = d.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) }
        guard n <= UInt64(d.count - 8) else { throw fail("header length \(n) exceeds the file's remaining \(d.count - 8) bytes") }
        let limit = InputLimit.safetensorsHeader
        guard n <= UInt64(limit.bytes) else { throw fail("header length \(n) is more than the \(limit.bytes)-byte limit for \(limit.what)") }
        let headerBytes = d.subdata(in: 8..<(8 + Int(n)))
        guard let json = try? JSONSerialization.jsonObject(with: headerBytes), let header = json as? [String: Any] else {
            throw fail("header is not a JSON object")
        }
        let dataSize = d.count - 8 - Int(n)
        var entries: [String: Entry] = [:]
        var metadata: [String: String] = [:]
        for (name, value) in header {
            if name == "__metadata__" {
                if let m = value as? [String: Any] { for (k, v) in m { metadata[k] = "\(v)" } }
                continue
            }
            guard let obj = value as? [String: Any], let dt = obj["dtype"] as? String,
                  let shapeAny = obj["shape"] as? [Any], let offAny = obj["data_offsets"] as? [Any], offAny.count == 2 else {
                throw fail("tensor '\(name)': entry needs dtype, shape and data_offsets [begin, end]")
            }
            guard let dtype = DType(rawValue: dt) else {
                throw fail("tensor '\(name)': unsupported dtype \(dt) (supported: F32, F16, BF16, F64, and integer/bool entries that are not read as weights)")
            }
            let shape = shapeAny.compactMap { ($0 as? NSNumber)?.intValue }
            let offs = offAny.compactMap { ($0 as? NSNumber)?.intValue }
            guard shape.count == shapeAny.count, shape.allSatisfy({ $0 >= 0 }), offs.count == 2 else {
                throw fail("tensor '\(name)': shape and data_offsets must be non-negative integers")
            }
            let (b, e) = (offs[0], offs[1])
            guard b >= 0, e >= b, e <= dataSize else {
                throw fail("tensor '\(name)': data_offsets [\(b), \(e)] outside the data section of \(dataSize) bytes")
            }
            let expected = shape.reduce(1, *) * dtype.size
            guard e - b == expected else {
                throw fail("tensor '\(name)': \(e - b) bytes for shape \(shape) of \(dt), expected \(expected)")
            }
            entries[name] = Entry(name: name, dtype: dtype, shape: shape, begin: b, end: e)
        }
        let sorted = entries.values.sorted { $0.begin < $1.begin }
        for (a, b) in zip(sorted, sorted.dropFirst()) where b.begin < a.end {
            throw fail("tensors '\(a.name)' and '\(b.name)' overlap (bytes \(a.begin)..<\(a.end) and \(b.begin)..<\(b.end))")
        }
        self.entries = entries
        self.metadata = metadata
        self.data = d
        self.dataStart = 8 + Int(n)
    }

    public func shape(_ name: String) -> [Int]? { entries[name]?.shape }

    /// The named tensor as Float32.
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else { throw SafetensorsError(path: path, message: "no tensor named '\(name)'") }
        guard e.dtype.isFloat else {
            throw SafetensorsError(path: path, message: "tensor '\(name)' is \(e.dtype.rawValue), not a floating-point weight")
        }
        let t = Tensor(shape: e.shape)
        let count = t.count
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + dataStart + e.begin
            switch e.dtype {
            case .f32:
                memcpy(t.data, base, count * 4)   // little-endian hosts only (x86-64, arm64)
            case .f16:
                for i in 0..<count { t.data[i] = halfToFloat(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
            case .bf16:
                for i in 0..<count {
                    t.data[i] = Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
                }
            case .f64:
                for i in 0..<count { t.data[i] = Float(base.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
            case .i64, .i32, .i16, .i8, .u8, .bool:
                break
            }
        }
        return t
    }

    /// Writes Float32 tensors (sorted by name) atomically: a temporary file, then a rename.
    public static func write(_ tensors: [String: Tensor], metadata: [String: String] = [:], to path: String) throws {
        var header: [String: Any] = [:]
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let names = tensors.keys.sorted()
        for name in names {
            let t = tensors[name]!
            header[name] = ["dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + 4 * t.count]] as [String: Any]
            offset += 4 * t.count
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        var n = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &n) { out.append(contentsOf: $0) }
        out.append(json)
        for name in names {
            let t = tensors[name]!
            out.append(Data(bytes: t.data, count: 4 * t.count))
        }
        try atomicWrite(out, to: path)
    }
}

/// IEEE 754 half to single precision, subnormals and infinities included.
@inlinable
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exp = Int((h >> 10) & 0x1f)
    let mant = UInt32(h & 0x3ff)
    if exp == 0 {
        if mant == 0 { return Float(bitPattern: sign) }
        let v = Float(mant) * 0x1p-24   // subnormal: mant * 2^-24
        return sign != 0 ? -v : v
    }
    if exp == 31 { return Float(bitPattern: sign | 0x7f80_0000 | (mant << 13)) }
    return Float(bitPattern: sign | UInt32(exp - 15 + 127) << 23 | (mant << 13))
}

/// Writes `data` to a temporary file beside `path`, then renames it into place, so a reader
/// (or a killed run) never sees a half-written file.
public func atomicWrite(_ data: Data, to path: String) throws {
    let url = URL(fileURLWithPath: path)
    let dir = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
    try data.write(to: tmp)
    if rename(tmp.path, url.path) != 0 {
        let err = String(cString: strerror(errno))
        try? FileManager.default.removeItem(at: tmp)
        throw SafetensorsError(path: path, message: "cannot move the finished file into place: \(err)")
    }
}
