import CZlib
import Foundation

/// gzip decompression with zlib's inflate, for IDX files and `.tar.gz` archives.
public enum Gzip {
    /// True when `data` starts with the gzip magic bytes 1f 8b: files are recognised by content,
    /// not by their name, so a renamed or unpacked file reads the same.
    public static func isGzip(_ data: Data) -> Bool {
        data.count >= 2 && data[data.startIndex] == 0x1f && data[data.startIndex + 1] == 0x8b
    }

    /// Decompresses every member of a gzip file (`cat a.gz b.gz` is one valid gzip file holding
    /// both contents, as gzip(1) reads it). Zero bytes after the last member (padding) are ignored.
    /// Throws a `DataError` naming `source` when the input is truncated or corrupt, or when it
    /// decompresses to more than `limit` (checked as it streams, so a gzip bomb is refused after at
    /// most one chunk past the limit).
    public static func decompress(_ data: Data, source: String, limit: InputLimit = .gunzipped) throws -> Data {
        guard !data.isEmpty else { throw DataError(path: source, message: "empty file, expected gzip data") }
        var stream = z_stream()
        // 15 + 32: the largest window, and a gzip (or zlib) header detected automatically.
        guard inflateInit2_(&stream, 15 + 32, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw DataError(path: source, message: "zlib could not start a decompression stream")
        }
        defer { inflateEnd(&stream) }

        var out = Data()
        // A member's last 4 bytes are its size mod 2^32: a first guess at the capacity, bounded by
        // deflate's largest possible ratio so a corrupt trailer cannot make us reserve gigabytes.
        if data.count >= 4 {
            let t = data.suffix(4).map(Int.init)
            out.reserveCapacity(min(t[0] | t[1] << 8 | t[2] << 16 | t[3] << 24, data.count * 1032, limit.bytes))
        }
        let chunk = 1 << 20
        var buffer = [UInt8](repeating: 0, count: chunk)
        try data.withUnsafeBytes { (src: UnsafeRawBufferPointer) in
            let base = src.bindMemory(to: Bytef.self).baseAddress!
            var fedEnd = 0  // input handed to zlib so far; avail_in is 32-bit, so large inputs go in pieces
            while true {
                if stream.avail_in == 0 && fedEnd < src.count {
                    let piece = min(src.count - fedEnd, Int(UInt32.max))
                    stream.next_in = UnsafeMutablePointer(mutating: base + fedEnd)
                    stream.avail_in = uInt(piece)
                    fedEnd += piece
                }
                let (status, produced) = buffer.withUnsafeMutableBufferPointer { dst -> (Int32, Int) in
                    stream.next_out = dst.baseAddress
                    stream.avail_out = uInt(chunk)
                    let r = inflate(&stream, Z_NO_FLUSH)
                    return (r, chunk - Int(stream.avail_out))
                }
                if out.count + produced > limit.bytes { throw limit.exceeded(source) }
                buffer.withUnsafeBufferPointer { out.append($0.baseAddress!, count: produced) }
                switch status {
                case Z_OK:
                    continue
                case Z_STREAM_END:
                    let position = fedEnd - Int(stream.avail_in)
                    if position == src.count || src[position...].allSatisfy({ $0 == 0 }) { return }
                    inflateReset(&stream)  // another member follows
                case Z_BUF_ERROR where stream.avail_in == 0 && fedEnd == src.count:
                    throw DataError(path: source, message: "truncated gzip data: the stream ends after \(data.count) bytes, mid-member (\(out.count) bytes decompressed)")
                case Z_BUF_ERROR:
                    continue
                default:
                    let why = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw DataError(path: source, message: "corrupt gzip data at byte \(fedEnd - Int(stream.avail_in)): \(why)")
                }
            }
        }
        return out
    }
}
