// The lock around the simulator's state.
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A value that is only reached under a pthread mutex. (`Synchronization.Mutex` would do as well, but on
/// Linux it synchronises through raw futex calls that ThreadSanitizer does not see, which buries a
/// `swift test --sanitize=thread` run in false reports; pthread mutexes (PThreadMutex, what NSLock is) it understands.)
final class Locked<Value: Sendable>: @unchecked Sendable {
    // @unchecked: `value` is read and written only inside `withLock`, while `lock` is held.
    private let lock = PThreadMutex()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<Result>(_ body: (inout Value) throws -> Result) rethrows -> Result {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
