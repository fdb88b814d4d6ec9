// printf-style formatting through the C library's vsnprintf: what `String(format:)` does for numbers, without full
// Foundation (String(format:) lives in Foundation and with it ICU: see docs/board-footprint.md).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// `cFormat("%.3f", x)` == `String(format: "%.3f", x)` for the C conversions (%d %f %x %s of C strings…; not %@).
public func cFormat(_ format: String, _ arguments: CVarArg...) -> String {
    withVaList(arguments) { first in
        var buffer = [CChar](repeating: 0, count: 128)
        let needed = Int(vsnprintf(&buffer, buffer.count, format, first))
        if needed < buffer.count { return String(cString: buffer) }
        return withVaList(arguments) { again in
            buffer = [CChar](repeating: 0, count: needed + 1)
            _ = vsnprintf(&buffer, buffer.count, format, again)
            return String(cString: buffer)
        }
    }
}
