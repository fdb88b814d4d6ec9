#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A Unix socket address for `path`; a leading `@` names an abstract socket (as systemd's
/// `$NOTIFY_SOCKET` may). Used by the systemd notifier (`sendDatagram`) and by swapctl's control client
/// (`connectStream`).
public struct UnixSocketAddress {
    private var address = sockaddr_un()
    private let length: socklen_t

    /// nil when the path does not fit in `sun_path`.
    public init?(path: String) {
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        guard !bytes.isEmpty, bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        // A path name counts its terminating NUL; an abstract name is exactly its bytes.
        length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
    }

    /// Calls `body` with the address as `connect`/`sendto` want it.
    public func withSockaddr<T>(_ body: (UnsafePointer<sockaddr>, socklen_t) throws -> T) rethrows -> T {
        try withUnsafePointer(to: address) { p in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { try body($0, length) }
        }
    }
}

extension UnixSocketAddress {
    /// Sends one datagram to this address from a fresh socket (sd_notify's way: `$NOTIFY_SOCKET`).
    /// Returns the bytes sent; throws the failing call with its errno.
    @discardableResult
    public func sendDatagram(_ payload: [UInt8]) throws -> Int {
        let fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        defer { close(fd) }
        return try withSockaddr { sa, length in
            try payload.withUnsafeBytes { raw in
                try systemCall("sendto") { sendto(fd, raw.baseAddress, raw.count, Int32(MSG_NOSIGNAL), sa, length) }
            }
        }
    }

    /// A connected stream socket (close-on-exec) to this address, with send and receive timeouts in seconds.
    public func connectStream(timeout: Double) throws -> Int32 {
        let fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0) }
        do {
            var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
            try systemCall("setsockopt(SO_RCVTIMEO)") { setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) }
            try systemCall("setsockopt(SO_SNDTIMEO)") { setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size)) }
            try withSockaddr { sa, length in try systemCall("connect") { connect(fd, sa, length) } }
            return fd
        } catch {
            close(fd)
            throw error
        }
    }
}
