#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization

/// Calls `onWrite` whenever a file is written, by this process or another (inotify `IN_MODIFY`): a wait on a
/// change instead of a poll. One thread blocks in poll(2) on the inotify descriptor and a pipe that `stop()`
/// writes; it does nothing while the file is not written.
///
/// Used on a SQLite database's `-wal` file: every commit, by any connection of any process, writes it. The event
/// can arrive while the committing process is still between its last `write` and the update of the WAL index
/// (its fsync), so a reader woken by it may not see the transaction yet: callers look again shortly after.
public final class FileWriteWatch: Sendable {
    private let inotify: Int32
    private let stopFD: Int32
    private let stopWriteFD: Int32
    private let stopped = Atomic<Bool>(false)
    private let onWrite: @Sendable () -> Void

    /// Nil when the file cannot be watched (no such file, inotify not available): the caller falls back to a timeout.
    public init?(path: String, onWrite: @escaping @Sendable () -> Void) {
        #if os(Linux)
        let fd = inotify_init1(Int32(IN_CLOEXEC))
        guard fd >= 0 else { return nil }
        guard inotify_add_watch(fd, path, UInt32(IN_MODIFY)) >= 0 else { close(fd); return nil }
        var ends: [Int32] = [-1, -1]
        guard pipe(&ends) == 0 else { close(fd); return nil }
        for end in ends { _ = fcntl(end, F_SETFD, FD_CLOEXEC) }
        inotify = fd
        stopFD = ends[0]
        stopWriteFD = ends[1]
        self.onWrite = onWrite
        let box = Unmanaged.passRetained(self).toOpaque()
        var thread = pthread_t()
        let rc = pthread_create(&thread, nil, { arg in
            let watch = Unmanaged<FileWriteWatch>.fromOpaque(arg!).takeRetainedValue()
            watch.serve()
            return nil
        }, box)
        guard rc == 0 else {
            Unmanaged<FileWriteWatch>.fromOpaque(box).release()
            close(fd); close(ends[0]); close(ends[1])
            return nil
        }
        pthread_detach(thread)
        #else
        return nil
        #endif
    }

    /// Ends the watching thread (it closes the descriptors). Idempotent; `onWrite` is not called after it returns
    /// except for a call already running.
    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        var one: UInt8 = 1
        _ = write(stopWriteFD, &one, 1)
    }

    private func serve() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        var fds = [pollfd(fd: inotify, events: Int16(POLLIN), revents: 0), pollfd(fd: stopFD, events: Int16(POLLIN), revents: 0)]
        while !stopped.load(ordering: .acquiring) {
            fds[0].revents = 0; fds[1].revents = 0
            let n = poll(&fds, 2, -1)
            if n < 0 { if errno == EINTR { continue } else { break } }
            if fds[1].revents != 0 || stopped.load(ordering: .acquiring) { break }
            if fds[0].revents != 0 {
                // Whatever queued up is one write as far as the caller is concerned.
                let got = buffer.withUnsafeMutableBytes { read(inotify, $0.baseAddress, $0.count) }
                if got < 0 && errno != EINTR && errno != EAGAIN { break }
                onWrite()
            }
        }
        close(inotify)
        close(stopFD)
        close(stopWriteFD)
    }
}
