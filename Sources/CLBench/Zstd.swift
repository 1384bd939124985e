import CZstd
import CLData
import Foundation

/// zstd compression for result files (`NAME.json.zst`, readable with `zstd -dc FILE`).
public enum Zstd {
    public struct Failure: Error, CustomStringConvertible {
        public let message: String
        public var description: String { "zstd: \(message)" }
    }

    public static func compress(_ data: Data, level: Int32 = 19) throws -> Data {
        let bound = ZSTD_compressBound(data.count)
        var out = Data(count: bound)
        let written = out.withUnsafeMutableBytes { dst in
            data.withUnsafeBytes { src in ZSTD_compress(dst.baseAddress, bound, src.baseAddress, data.count, level) }
        }
        if ZSTD_isError(written) != 0 { throw Failure(message: String(cString: ZSTD_getErrorName(written))) }
        return out.prefix(written)
    }

    /// Decompresses a whole frame (streaming, so frames without a recorded size work too), holding
    /// at most `limit` bytes: a frame that declares or produces more is an error naming `source`
    /// and the limit, raised before more than one chunk past the limit is held (a zstd bomb of
    /// 67 KB unpacks to gigabytes).
    public static func decompress(_ data: Data, source: String = "input", limit: InputLimit = .resultJSON) throws -> Data {
        // A frame may record its size: refuse a declared size over the limit before decompressing.
        let declared = data.withUnsafeBytes { ZSTD_getFrameContentSize($0.baseAddress, data.count) }
        if declared < ZSTD_CONTENTSIZE_ERROR, declared > UInt64(limit.bytes) {
            throw limit.exceeded(source, by: declared > UInt64(Int.max) ? Int.max : Int(declared))
        }
        guard let stream = ZSTD_createDStream() else { throw Failure(message: "cannot create a decompression stream") }
        defer { ZSTD_freeDStream(stream) }
        ZSTD_initDStream(stream)
        var result = Data()
        let chunk = ZSTD_DStreamOutSize()
        var buffer = [UInt8](repeating: 0, count: chunk)
        var last: Int = 0
        try data.withUnsafeBytes { src in
            var input = ZSTD_inBuffer(src: src.baseAddress, size: data.count, pos: 0)
            var more = true
            while more {
                let produced: Int = try buffer.withUnsafeMutableBytes { dst in
                    var output = ZSTD_outBuffer(dst: dst.baseAddress, size: chunk, pos: 0)
                    let r = ZSTD_decompressStream(stream, &output, &input)
                    if ZSTD_isError(r) != 0 { throw Failure(message: "\(source): \(String(cString: ZSTD_getErrorName(r)))") }
                    last = r
                    return output.pos
                }
                if result.count + produced > limit.bytes { throw limit.exceeded(source) }
                result.append(contentsOf: buffer[0..<produced])
                // Go on while input remains, or while the frame is unfinished (r != 0) and the last
                // call made progress. (Stopping when a call produced less than a full chunk was wrong:
                // zstd returns after each block, so a frame of more than a block or two of highly
                // compressible data was reported truncated.)
                more = input.pos < input.size || (last != 0 && produced > 0)
            }
        }
        if last != 0 { throw Failure(message: "\(source): truncated zstd frame") }
        return result
    }
}
