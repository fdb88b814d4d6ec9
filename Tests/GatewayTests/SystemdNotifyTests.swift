import Foundation
import Testing
import TestSupport

/// Type=notify without systemd: a datagram socket made by the test stands in for $NOTIFY_SOCKET, and we
/// check what the daemon tells the service manager: READY=1 once it serves, WATCHDOG=1 at half the
/// watchdog period, STOPPING=1 at SIGTERM.
@Suite(.serialized) struct SystemdNotifyTests {
    @Test func readyWatchdogAndStoppingReachTheNotifySocket() throws {
        let st = try Station(slots: 4)
        defer { st.stop() }
        let socketPath = st.dir.path("notify.sock")
        let listener = try ManagedProcess("/usr/bin/python3", ["-u", "-c", """
        import socket, sys
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(sys.argv[1])
        print("listening", flush=True)
        while True:
            msg = s.recv(4096).decode()
            print(msg.replace("\\n", "|"), flush=True)
        """, socketPath], name: "notify-listener")
        defer { listener.stop() }
        try listener.waitForOutput(timeout: 10) { $0.contains("listening") }

        let gw = try ManagedProcess(try productPath("swapgate"), ["run", "-c", st.configPath], name: "swapgate",
                                    environment: ["NOTIFY_SOCKET": socketPath, "WATCHDOG_USEC": "1000000"])
        try listener.waitForOutput(timeout: 60) { $0.contains("READY=1") }
        // The control socket answers by the time READY=1 is sent.
        #expect(try st.swapctl(["status"]).status == 0)
        try listener.waitForOutput(timeout: 10) { $0.components(separatedBy: "WATCHDOG=1").count - 1 >= 3 }
        #expect(gw.stop(signal: SIGTERM, timeout: 20) == 0, "\(gw.output().suffix(2000))")
        try listener.waitForOutput(timeout: 10) { $0.contains("STOPPING=1") }
        let lines = listener.output().split(separator: "\n").map(String.init)
        let ready = try #require(lines.firstIndex { $0.contains("READY=1") })
        let firstPing = try #require(lines.firstIndex { $0.contains("WATCHDOG=1") })
        #expect(ready < firstPing, "\(lines)")
        #expect(lines.contains { $0.contains("MAINPID=\(gw.pid)") })
    }
}
