import Foundation
import StationSupport
import Testing
#if canImport(Glibc)
import Glibc
#endif

@Suite struct SystemCallTests {
    /// A failing call throws its name and the errno it set, not a later one.
    @Test func aFailureCarriesTheCallAndItsErrno() throws {
        let path = "/nonexistent-\(getpid())/file"
        let error = #expect(throws: SystemCallError.self) { try systemCall("open") { open(path, O_RDONLY) } }
        #expect(error == SystemCallError(call: "open", errno: ENOENT))
        #expect(error?.description.contains("open: No such file or directory") == true)
    }

    /// EINTR is retried (a call interrupted by a signal is made again), any other failure is not.
    @Test func eintrIsRetried() throws {
        var calls = 0
        let value = try systemCall("fake") { () -> Int32 in
            calls += 1
            if calls < 3 { errno = EINTR; return -1 }
            return 7
        }
        #expect(value == 7 && calls == 3)
    }

    @Test func errorNumbersReturnedDirectlyAreThrown() {
        let error = #expect(throws: SystemCallError.self) { try systemCallReturningError("posix_fallocate") { EBADF } }
        #expect(error?.errno == EBADF)
    }

    /// The datagram send sd_notify uses, through a real Unix socket: what is sent arrives; a missing socket
    /// is an error naming the call.
    @Test func datagramToARealUnixSocket() throws {
        let path = NSTemporaryDirectory() + "station-support-\(getpid()).sock"
        unlink(path)
        let address = try #require(UnixSocketAddress(path: path))
        #expect(throws: SystemCallError.self) { try address.sendDatagram(Array("READY=1".utf8)) }
        let fd = try systemCall("socket") { socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0) }
        defer { close(fd); unlink(path) }
        try address.withSockaddr { sa, len in try systemCall("bind") { bind(fd, sa, len) } }
        #expect(try address.sendDatagram(Array("READY=1".utf8)) == 7)
        var buffer = [UInt8](repeating: 0, count: 64)
        let n = try systemCall("recv") { recv(fd, &buffer, buffer.count, 0) }
        #expect(String(decoding: buffer[..<n], as: UTF8.self) == "READY=1")
        // A stream connect to a datagram socket is refused with the protocol's errno.
        #expect(throws: SystemCallError.self) { _ = try address.connectStream(timeout: 1) }
    }
}

@Suite struct SignalsTests {
    /// Many tasks increment through the lock; none is lost.
    @Test func lockedCountsEveryIncrement() async {
        let counter = Locked(0)
        await withTaskGroup(of: Void.self) { group in
            for _ in 0 ..< 8 { group.addTask { for _ in 0 ..< 10_000 { counter.withLock { $0 += 1 } } } }
        }
        #expect(counter.current == 80_000)
    }

    /// A signal before the wait is kept (level-triggered); several collapse into one.
    @Test func wakeupKeepsASignalGivenBeforeTheWait() async {
        let wake = Wakeup()
        wake.signal(); wake.signal()
        await wake.wait(timeout: 3600)   // returns at once: a signal is pending
        let woken = Locked(false)
        let waiter = Task { await wake.wait(timeout: 3600); woken.withLock { $0 = true } }
        wake.signal()
        await waiter.value
        #expect(woken.current)
    }

    @Test func wakeupReturnsAtItsTimeoutWithoutASignal() async {
        let wake = Wakeup()
        await wake.wait(timeout: 0.01)
    }

    @Test func readyFlagReleasesEveryWaiterAndLaterOnes() async {
        let flag = ReadyFlag()
        let waiters = (0 ..< 5).map { _ in Task { await flag.wait() } }
        flag.set()
        for w in waiters { await w.value }
        await flag.wait()
    }
}

@Suite struct DiskReserveTests {
    @Test func reserveIsPreallocatedAndReleased() throws {
        let path = NSTemporaryDirectory() + "station-support-reserve-\(getpid())"
        defer { unlink(path) }
        #expect(DiskReserve.ensure(at: path, bytes: 1 << 20))
        var st = stat()
        try systemCall("stat") { stat(path, &st) }
        #expect(st.st_size == 1 << 20 && Int(st.st_blocks) * 512 >= 1 << 20)   // real blocks, not a sparse file
        #expect(DiskReserve.release(at: path))
        #expect(!DiskReserve.release(at: path))
    }
}
