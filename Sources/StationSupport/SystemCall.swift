#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// Raw system calls, in the style of swift-nio's NIOPosix/System.swift: one wrapper calls the function, retries
// it while it fails with EINTR, and turns any other failure into an error that carries errno and the call's
// name, captured right after the call (before anything else can overwrite errno).

/// A failed system call: its name and errno.
public struct SystemCallError: Error, Equatable, CustomStringConvertible {
    public let call: String
    public let errno: Int32

    public init(call: String, errno: Int32) { self.call = call; self.errno = errno }

    /// strerror's words, e.g. "No such file or directory".
    public var reason: String { String(cString: strerror(errno)) }
    public var description: String { "\(call): \(reason) (errno \(errno))" }
}

/// Calls `body`, a system call that returns -1 and sets errno on failure; retries on EINTR.
/// Returns the call's result (a file descriptor, a byte count, 0).
@inline(__always) @discardableResult
public func systemCall<T: FixedWidthInteger>(_ name: @autoclosure () -> String, _ body: () throws -> T) throws -> T {
    while true {
        let result = try body()
        if result == -1 {
            let err = errno
            if err == EINTR { continue }
            throw SystemCallError(call: name(), errno: err)
        }
        return result
    }
}

/// Calls `body`, a function that returns 0 or an error number itself (posix_fallocate, pthread_*); retries on EINTR.
@inline(__always)
public func systemCallReturningError(_ name: @autoclosure () -> String, _ body: () -> Int32) throws {
    while true {
        let err = body()
        if err == 0 { return }
        if err == EINTR { continue }
        throw SystemCallError(call: name(), errno: err)
    }
}
