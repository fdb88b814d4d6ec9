// A pthread mutex: what NSLock is on Linux, without full Foundation (station-sim links FoundationEssentials only,
// so no ICU; see docs/board-footprint.md). ThreadSanitizer understands pthread mutexes (see Locked.swift).
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

final class PThreadMutex: @unchecked Sendable {
    // @unchecked: the mutex is the synchronisation; it lives in its own allocation and never moves.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>

    init() {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
        pthread_mutex_init(mutex, nil)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
    }

    func lock() { pthread_mutex_lock(mutex) }
    func unlock() { pthread_mutex_unlock(mutex) }
}

/// Writes all of `line` to a file descriptor with write(2), unbuffered (what FileHandle.write did): tests and
/// supervisors read station-sim's lines while it runs.
public func writeUnbuffered(_ line: String, to fd: Int32) {
    var bytes = Array(line.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { raw in write(fd, raw.baseAddress! + offset, raw.count - offset) }
        if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
    }
}

/// Starts `body` on a new detached pthread named `name` (what Foundation's `Thread { }.start()` did).
func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
    final class Box: @unchecked Sendable {
        let name: String
        let body: @Sendable () -> Void
        init(_ name: String, _ body: @escaping @Sendable () -> Void) { self.name = name; self.body = body }
    }
    let box = Unmanaged.passRetained(Box(name, body)).toOpaque()
    var attr = pthread_attr_t()
    pthread_attr_init(&attr)
    pthread_attr_setdetachstate(&attr, Int32(PTHREAD_CREATE_DETACHED))
    defer { pthread_attr_destroy(&attr) }
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attr, { raw in
        let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
        #if canImport(Glibc)
        _ = setThreadName(pthread_self(), String(box.name.prefix(15)))
        #endif
        box.body()
        return nil
    }, box)
    precondition(rc == 0, "pthread_create failed: \(rc)")
}

#if canImport(Glibc)
// glibc declares pthread_setname_np only under _GNU_SOURCE, which the Glibc module does not see.
@_silgen_name("pthread_setname_np")
private func setThreadName(_ thread: pthread_t, _ name: UnsafePointer<CChar>) -> Int32
#endif

// Trimming as Foundation's `trimmingCharacters(in:)` with `.whitespaces`, `.newlines` and `.whitespacesAndNewlines`
// (that method lives in full Foundation, not FoundationEssentials).
extension Unicode.Scalar {
    /// CharacterSet.newlines: U+000A–U+000D, U+0085, U+2028, U+2029.
    var isNewlineScalar: Bool {
        switch value { case 0x0A...0x0D, 0x85, 0x2028, 0x2029: return true; default: return false }
    }
}

extension StringProtocol {
    func trimmingScalars(_ drop: (Unicode.Scalar) -> Bool) -> String {
        let scalars = unicodeScalars
        guard let first = scalars.firstIndex(where: { !drop($0) }) else { return "" }
        let last = scalars.lastIndex(where: { !drop($0) })!
        var kept = String.UnicodeScalarView()
        kept.append(contentsOf: scalars[first...last])
        return String(kept)
    }
    /// `trimmingCharacters(in: .whitespaces)`: spaces and tabs (Unicode White_Space minus the newlines).
    public func trimmingWhitespaces() -> String { trimmingScalars { $0.properties.isWhitespace && !$0.isNewlineScalar } }
    /// `trimmingCharacters(in: .newlines)`.
    public func trimmingNewlines() -> String { trimmingScalars { $0.isNewlineScalar } }
    /// `trimmingCharacters(in: .whitespacesAndNewlines)`.
    public func trimmingWhitespacesAndNewlines() -> String { trimmingScalars { $0.properties.isWhitespace || $0.isNewlineScalar } }
}
