// A pair of connected pseudo-terminals made by socat: whatever is written to one end comes out
// of the other, like the two ends of an RS-485 line. Used to test Modbus RTU without hardware.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class SocatPty: @unchecked Sendable {
    // @unchecked: all stored properties are immutable; ManagedProcess is itself thread-safe.
    public let process: ManagedProcess
    public let directory: TempDir
    /// One end (e.g. the simulator's serial device).
    public let pathA: String
    /// The other end (e.g. the client's serial device).
    public let pathB: String

    /// Starts `socat -d -d pty,raw,echo=0,link=DIR/a pty,raw,echo=0,link=DIR/b` and waits until
    /// both links exist and socat is transferring data.
    public init(timeout: Double = 20) throws {
        directory = try TempDir("swapgate-pty")
        pathA = directory.path("a")
        pathB = directory.path("b")
        process = try ManagedProcess("socat", ["-d", "-d",
                                               "pty,raw,echo=0,link=\(pathA)",
                                               "pty,raw,echo=0,link=\(pathB)"], name: "socat")
        let a = pathA, b = pathB
        try process.waitForOutput(timeout: timeout) { out in
            out.contains("starting data transfer loop")
                && FileManager.default.fileExists(atPath: a) && FileManager.default.fileExists(atPath: b)
        }
    }

    /// Stops socat with SIGKILL: a child started from a Swift Testing worker thread inherits that
    /// thread's signal mask (nearly everything blocked), so socat never sees a SIGTERM and
    /// `ManagedProcess.stop()` would wait its full timeout. socat holds no state worth a clean exit.
    public func stop() {
        process.killHard()
        directory.remove()
    }

    deinit { stop() }
}
