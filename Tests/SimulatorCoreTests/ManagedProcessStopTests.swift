// TestSupport's ManagedProcess.stop() and runCommand end in every state of the child: crashed, exited while a
// grandchild holds Foundation's exit socket and the output, deaf to SIGTERM, reaped by someone else.
// (TestSupport is tested here: SimulatorCoreTests is a small target that links it.)
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Testing
import TestSupport

@Suite struct ManagedProcessStopTests {
    /// The state letter of `pid` in /proc ("R", "S", "Z", …), nil when there is no such process.
    private static func state(_ pid: pid_t) -> Character? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        return text[text.index(after: close)...].split(separator: " ").first?.first
    }

    private static func isGone(_ pid: pid_t) -> Bool { state(pid) == nil || state(pid) == "Z" }

    /// The PID the child printed on its first line (`echo $!`).
    private static func printedPID(_ p: ManagedProcess) throws -> pid_t {
        let out = try p.waitForOutput(timeout: 60) { $0.contains("\n") }
        return try #require(pid_t(out.split(separator: "\n").first.map(String.init) ?? ""))
    }

    @Test func aChildThatCrashedIsReportedWithItsSignal() throws {
        let p = try ManagedProcess("/bin/sh", ["-c", "kill -SEGV $$"], name: "segv")
        // Dead before stop() signals it, so the report is the crash's and not our SIGTERM's.
        #expect(eventually(timeout: 60) { !p.isRunning || Self.isGone(p.pid) })
        #expect(p.stop() == SIGSEGV)
        #expect(p.termination == .signalled(SIGSEGV))
        #expect(p.process.terminationReason == .uncaughtSignal)
        // Idempotent: no second signal, the same answer.
        #expect(p.stop() == SIGSEGV)
        p.killHard()
        #expect(p.termination == .signalled(SIGSEGV))
    }

    /// The child exits at once, but its background `sleep` inherits Foundation's exit socket (and the log), so
    /// Foundation never reaps it and `isRunning` stays true: the old stop() sent SIGTERM, SIGKILL to a zombie
    /// and then waited in `waitUntilExit()` as long as the grandchild lived.
    @Test func aChildWhoseGrandchildHoldsItsOutputStops() throws {
        let p = try ManagedProcess("/bin/sh", ["-c", "sleep 3600 & echo $!; exit 3"], name: "grandchild")
        let grandchild = try Self.printedPID(p)
        #expect(eventually(timeout: 60) { Self.state(p.pid) == "Z" || Self.state(p.pid) == nil })
        #expect(p.isRunning, "Foundation reaped the child: this test no longer covers the held socket")
        #expect(p.stop() == 3)
        #expect(p.termination == .exited(3))
        // The grandchild was in the child's process group and went with it.
        #expect(eventually(timeout: 60) { Self.isGone(grandchild) })
        if !Self.isGone(grandchild) { kill(grandchild, SIGKILL) }
    }

    /// As above, but the grandchild has a session of its own (out of reach of the group kill): the zombie's
    /// status comes from /proc, and stop() still returns.
    @Test func aChildWhoseGrandchildLeftItsGroupStops() throws {
        let p = try ManagedProcess("/bin/sh", ["-c", "setsid sleep 3600 & echo $!; exit 5"], name: "escaped")
        let grandchild = try Self.printedPID(p)
        defer { kill(grandchild, SIGKILL) }   // ours: started by the child above
        #expect(eventually(timeout: 60) { Self.state(p.pid) == "Z" || Self.state(p.pid) == nil })
        #expect(p.stop(timeout: 1, killTimeout: 1) == 5)
        #expect(p.termination == .exited(5))
        #expect(p.stop() == 5)
    }

    /// waitForOutput sees the child's death even when Foundation cannot reap it, and fails with its status
    /// instead of waiting out its timeout.
    @Test func waitForOutputSeesADeadChildThatFoundationCannotReap() throws {
        let p = try ManagedProcess("/bin/sh", ["-c", "sleep 3600 & echo $!; exit 2"], name: "early-exit")
        let grandchild = try Self.printedPID(p)
        defer { if !Self.isGone(grandchild) { kill(grandchild, SIGKILL) } }
        do {
            try p.waitForOutput(timeout: 3600) { $0.contains("never printed") }
            Issue.record("the predicate held")
        } catch let error as TestSupportError {
            guard case .processFailed(let message) = error else { Issue.record("\(error)"); return }
            #expect(message.hasPrefix("early-exit exited (exit 2)"))
        }
        #expect(p.stop() == 2)
    }

    @Test func aChildDeafToSIGTERMIsKilled() throws {
        let p = try ManagedProcess("/bin/sh", ["-c", "trap '' TERM; echo ready; while :; do sleep 1; done"], name: "deaf")
        try p.waitForOutput(timeout: 60) { $0.contains("ready") }
        #expect(p.stop(timeout: 1) == SIGKILL)
        #expect(p.termination == .signalled(SIGKILL))
    }

    /// Reaped by someone else (here: by us, with waitpid): nothing is signalled and stop() returns at once.
    @Test func aChildReapedElsewhereIsUnknown() throws {
        // The background sleep holds Foundation's socket, so Foundation does not race us to waitpid.
        let p = try ManagedProcess("/bin/sh", ["-c", "sleep 3600 & echo $!; exit 0"], name: "reaped")
        let grandchild = try Self.printedPID(p)
        defer { kill(grandchild, SIGKILL) }
        var status: Int32 = 0
        #expect(waitpid(p.pid, &status, 0) == p.pid)
        #expect(p.stop(timeout: 1, killTimeout: 1) == -1)
        #expect(p.termination == .unknown)
    }

    /// runCommand returns the status and output of a command that left a process holding its output pipe.
    @Test func runCommandReturnsWhenAGrandchildHoldsThePipe() throws {
        let r = try runCommand("/bin/sh", ["-c", "sleep 3600 & echo out; exit 3"], timeout: 600)
        #expect(r.status == 3)
        #expect(r.output == "out\n")
        let big = String(repeating: "line\n", count: 50_000)
        // Input larger than a pipe's buffer, to a command that reads none of it and exits: no hang, no SIGPIPE.
        let ignored = try runCommand("/bin/sh", ["-c", "exit 4"], input: big)
        #expect(ignored.status == 4)
        let echoed = try runCommand("/bin/cat", [], input: big)
        #expect(echoed.status == 0 && echoed.output == big)
    }

    /// Ending children leaves no descriptor behind in the test process (each one once kept one open: ~1 000 after
    /// the whole suite, and libmosquitto's select(2) then refused every connect with MOSQ_ERR_INVAL).
    @Test func endingChildrenLeaksNoDescriptors() throws {
        func openDescriptors() -> Int { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count) ?? -1 }
        for _ in 0 ..< 5 { _ = try runCommand("true", []); _ = try runCommand("cat", [], input: "x") }   // warm-up
        let before = openDescriptors()
        for _ in 0 ..< 40 { _ = try runCommand("true", []) }
        for _ in 0 ..< 40 { _ = try runCommand("cat", [], input: "x") }
        for _ in 0 ..< 20 { let p = try ManagedProcess("sleep", ["30"]); p.stop() }
        let after = openDescriptors()
        #expect(before > 0 && after - before <= 5, "descriptors \(before) → \(after) over 100 children")
    }
}

