import CZlib
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Raw DEFLATE (RFC 1951, no zlib or gzip header) with a hard limit on the output: the only Swift
/// that touches zlib (`enc: deflate` envelopes, abs-mqtt.md "Large commands over a thin link").
///
/// Streaming: zlib writes into the output buffer in steps of `step` bytes and stops as soon as the
/// output would pass `limit`, so an inflate bomb costs at most `limit` bytes (plus one step) and the
/// time to produce them, never its announced size.
enum Inflater {
    struct Failure: Error, Equatable {
        let message: String
    }

    static let step = 256 * 1024

    /// The inflated bytes of `input`, which must be exactly one complete raw DEFLATE stream (nothing
    /// after its end). Throws when the output would exceed `limit` bytes, the data is not DEFLATE,
    /// the stream is cut short, or bytes follow it. The output lives in one malloc'd block grown by
    /// realloc (large blocks are remapped by glibc, not copied) and is handed over without a copy.
    static func inflateRaw(_ input: [UInt8], limit: Int) throws(Failure) -> InflatedBytes {
        var stream = z_stream()
        guard czlib_inflate_init_raw(&stream) == Z_OK else {
            throw Failure(message: "cannot start inflating (zlib: out of memory)")
        }
        defer { inflateEnd(&stream) }

        // A first guess (JSON deflates 5–30×), capped by the limit; then doubled, never past it.
        let guess = input.count > limit / 8 ? limit : input.count * 8
        var capacity = max(step, min(limit + 1, guess))
        guard var base = malloc(capacity)?.assumingMemoryBound(to: UInt8.self) else {
            throw Failure(message: "out of memory while inflating")
        }
        var count = 0
        var failure: Failure?
        input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = UInt32(inBuf.count)
            while true {
                if count == capacity {
                    // Full: grow, but never beyond one byte past the limit (the byte that proves it is passed).
                    let grown = min(limit + 1, capacity * 2)
                    guard grown > capacity, let p = realloc(base, grown) else {
                        failure = Failure(message: "out of memory while inflating")
                        return
                    }
                    base = p.assumingMemoryBound(to: UInt8.self)
                    capacity = grown
                }
                let room = min(step, capacity - count)
                stream.next_out = base + count
                stream.avail_out = UInt32(room)
                let status = inflate(&stream, Z_NO_FLUSH)
                count += room - Int(stream.avail_out)
                if count > limit {
                    failure = Failure(message: "the payload inflates beyond the station's limit of \(limit) bytes")
                    return
                }
                switch status {
                case Z_STREAM_END:
                    if stream.avail_in != 0 {
                        failure = Failure(message: "\(stream.avail_in) bytes follow the end of the DEFLATE stream")
                    }
                    return
                case Z_OK:
                    continue
                case Z_BUF_ERROR:
                    // No progress possible: the input ended before the stream did.
                    if stream.avail_in == 0 {
                        failure = Failure(message: "the DEFLATE stream is cut short")
                        return
                    }
                    continue
                case Z_MEM_ERROR:
                    failure = Failure(message: "out of memory while inflating")
                    return
                default:
                    let why = stream.msg.map { String(cString: $0) } ?? "error \(status)"
                    failure = Failure(message: "the payload is not raw DEFLATE data (zlib: \(why))")
                    return
                }
            }
        }
        if let failure {
            free(base)
            throw failure
        }
        return InflatedBytes(base: base, count: count)
    }
}

/// Inflated command bytes in a malloc'd block, freed with this object.
final class InflatedBytes {
    private let base: UnsafeMutablePointer<UInt8>
    let count: Int

    init(base: UnsafeMutablePointer<UInt8>, count: Int) {
        self.base = base
        self.count = count
    }

    deinit { free(base) }

    func withBuffer<R, E: Error>(_ body: (UnsafeBufferPointer<UInt8>) throws(E) -> R) throws(E) -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }
}
