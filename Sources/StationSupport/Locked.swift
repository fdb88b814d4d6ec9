import Synchronization

/// A value behind a `Synchronization.Mutex`, shareable between tasks and threads: a class (so closures and
/// several owners can hold the same one) whose Sendable conformance the compiler checks (Mutex is Sendable,
/// the stored Value must be too). Every read and write goes through `withLock`; never await inside it.
public final class Locked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    public init(_ value: Value) { mutex = Mutex(value) }

    /// Runs `body` with exclusive access to the value.
    public func withLock<T: Sendable, E: Error>(_ body: (inout Value) throws(E) -> T) throws(E) -> T {
        try mutex.withLock { (value: inout Value) throws(E) -> T in try body(&value) }
    }

    /// A copy of the value as it is now.
    public var current: Value { mutex.withLock { $0 } }
}
