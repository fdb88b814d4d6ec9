import CZlib

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
    /// the stream is cut short, or bytes follow it.
    static func inflateRaw(_ input: [UInt8], limit: Int) throws(Failure) -> [UInt8] {
        var stream = z_stream()
        guard czlib_inflate_init_raw(&stream) == Z_OK else {
            throw Failure(message: "cannot start inflating (zlib: out of memory)")
        }
        defer { inflateEnd(&stream) }

        // A guess that avoids most regrowth for JSON (ratios of 5–15 are usual), capped by the limit.
        var output = [UInt8]()
        output.reserveCapacity(min(limit, max(step, input.count.multipliedReportingOverflow(by: 8).overflow ? limit : input.count * 8)) + 1)
        var status: Int32 = Z_OK
        var failure: Failure?
        input.withUnsafeBufferPointer { inBuf in
            stream.next_in = UnsafeMutablePointer(mutating: inBuf.baseAddress)
            stream.avail_in = UInt32(inBuf.count)
            while true {
                // Room for one more step, but never more than one byte beyond the limit (the byte that
                // proves the limit is passed).
                let room = min(step, limit + 1 - output.count)
                let start = output.count
                if output.capacity < start + room {
                    // Grow by doubling, but never past the limit (Array's own doubling would).
                    output.reserveCapacity(min(limit + 1, max(start + room, output.capacity * 2)))
                }
                output.append(contentsOf: repeatElement(0, count: room))
                status = output.withUnsafeMutableBufferPointer { outBuf in
                    stream.next_out = outBuf.baseAddress! + start
                    stream.avail_out = UInt32(room)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                output.removeLast(Int(stream.avail_out))
                if output.count > limit {
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
        if let failure { throw failure }
        return output
    }
}
