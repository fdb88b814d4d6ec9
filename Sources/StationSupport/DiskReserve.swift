#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A reserve file: space set aside on a file system, deleted to make room when it fills up (the station store
/// keeps `<database>-reserve`, see StationStore's DiskSpace.swift and docs/store.md).
public enum DiskReserve {
    /// Creates the reserve file if it is missing and the file system has room to spare (three times `bytes`).
    /// Returns whether the reserve is in place. Never throws: the reserve is an aid, not a need.
    @discardableResult
    public static func ensure(at reservePath: String, bytes: Int) -> Bool {
        guard bytes > 0 else { return false }
        var existing = stat()
        if stat(reservePath, &existing) == 0, Int(existing.st_size) >= bytes {
            return true
        }
        let directory = parentDirectory(reservePath)
        var fs = statvfs()
        guard (try? systemCall("statvfs") { statvfs(directory.isEmpty ? "." : directory, &fs) }) != nil,
              Int64(fs.f_bavail) * Int64(fs.f_frsize) >= 3 * Int64(bytes) else { return false }
        guard let fd = try? systemCall("open", { open(reservePath, O_WRONLY | O_CREAT | O_CLOEXEC, 0o600) }) else { return false }
        var ok = (try? systemCallReturningError("posix_fallocate") { posix_fallocate(fd, 0, off_t(bytes)) }) != nil
        if !ok {
            // File systems without fallocate: write zeros (a sparse file would reserve nothing).
            ok = (try? systemCall("ftruncate") { ftruncate(fd, 0) }) != nil
            let chunk = [UInt8](repeating: 0, count: 64 * 1024)
            var written = 0
            while ok && written < bytes {
                let n = chunk.withUnsafeBytes { raw in try? systemCall("write") { write(fd, raw.baseAddress, min(raw.count, bytes - written)) } }
                if let n, n > 0 { written += n } else { ok = false }
            }
        }
        close(fd)
        if !ok { unlink(reservePath) }
        return ok
    }

    /// What `(path as NSString).deletingLastPathComponent` gives for a file path: "" for a bare name, "/" at the root.
    static func parentDirectory(_ path: String) -> String {
        var p = Substring(path)
        while p.count > 1 && p.hasSuffix("/") { p = p.dropLast() }
        guard let slash = p.lastIndex(of: "/") else { return "" }
        if slash == p.startIndex { return "/" }
        var parent = p[..<slash]
        while parent.count > 1 && parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }

    /// Deletes the reserve file. Returns whether there was one.
    public static func release(at reservePath: String) -> Bool {
        (try? systemCall("unlink") { unlink(reservePath) }) != nil
    }
}
