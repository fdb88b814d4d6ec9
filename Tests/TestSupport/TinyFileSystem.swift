import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A tiny tmpfs, mounted for one test when the test runs as root and `mount` works (it does on
/// the project's machines and CI, which run as root); otherwise the test is skipped.
public struct TinyFileSystem {
    public let dir: TempDir
    public var mountPoint: String { dir.url.path }

    public static let available: Bool = {
        guard geteuid() == 0, let probe = try? TinyFileSystem(bytes: 64 * 1024) else { return false }
        probe.unmount()
        return true
    }()

    public init(bytes: Int) throws {
        dir = try TempDir("stationstore-tmpfs")
        let result = try runCommand("mount", ["-t", "tmpfs", "-o", "size=\(bytes)", "tmpfs", dir.url.path], timeout: 10)
        guard result.status == 0 else {
            dir.remove()
            throw TestSupportError.processFailed("mount: \(result.output)")
        }
    }

    /// Writes a file until the file system refuses (ENOSPC); returns its size.
    @discardableResult
    public func fillUp(_ name: String) -> Int {
        let path = mountPoint + "/" + name
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0xee, count: 4_096)
        var total = 0
        while true {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            total += n
        }
        return total
    }

    public func unmount() {
        _ = try? runCommand("umount", [dir.url.path], timeout: 10)
        dir.remove()
    }
}

