#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import ArgumentParser

@main
struct SwapCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "swapctl",
        abstract: "Technician's tool for a swap station: status, slots, BMS, bus, queues, entitlements, audit, maintenance.",
        discussion: """
        Talks to the running daemon over its control socket (--socket PATH before or after the \
        subcommand, $SWAPCTL_SOCKET, default /run/swapgate/control.sock; you must be in the swapgate \
        group). `swapctl direct …` reads the cabinet over Modbus itself, for when the daemon is stopped.
        Exit codes: 0 ok, 1 usage or configuration error (bad options, bad_request), 2 daemon or cabinet \
        unreachable, 3 data error, 4 refused (credential, slot, cabinet, not found).
        """,
        // Nested the way swift-argument-parser's Examples/math does: each command a type inside SwapCtl (or inside
        // its group: Usage.List, Config.Check, Direct.Slots…), options shared through @OptionGroup (Options.swift).
        groupedSubcommands: [
            CommandGroup(name: "Station (through the daemon)", subcommands: [
                Status.self, Slots.self, BMS.self, Read.self, Events.self, Queues.self, Usage.self, Entitlements.self, Audit.self]),
            CommandGroup(name: "Actions (technician credential; audited)", subcommands: [Unlock.self, Service.self, LocalSwap.self]),
            CommandGroup(name: "Support", subcommands: [Config.self, Diagnostics.self, Metrics.self]),
            CommandGroup(name: "Daemon stopped", subcommands: [Direct.self]),
        ])
}

extension SwapCtl {
    /// Argument errors exit 1 (ArgumentParser's default is 64), as the exit-code table promises; `--socket PATH`
    /// given before the subcommand applies to it (it becomes $SWAPCTL_SOCKET, which the subcommand's own
    /// `--socket` still overrides).
    static func main() async {
        var arguments = Array(CommandLine.arguments.dropFirst())
        var i = 0
        while i < arguments.count, arguments[i].hasPrefix("-") {
            let a = arguments[i]
            if a == "--socket", i + 1 < arguments.count {
                setenv("SWAPCTL_SOCKET", arguments[i + 1], 1)
                arguments.removeSubrange(i ... i + 1)
            } else if a.hasPrefix("--socket=") {
                setenv("SWAPCTL_SOCKET", String(a.dropFirst("--socket=".count)), 1)
                arguments.remove(at: i)
            } else {
                i += 1
            }
        }
        do {
            var command = try parseAsRoot(arguments)
            if var command = command as? AsyncParsableCommand { try await command.run() } else { try command.run() }
        } catch {
            if exitCode(for: error) == .validationFailure {
                writeStandardError(fullMessage(for: error) + "\n")
                Self.exitProcess(1)
            }
            exit(withError: error)
        }
    }
}

extension SwapCtl {
    /// The C library's exit(3) (inside SwapCtl, `exit` names ArgumentParser's `exit(withError:)`).
    static func exitProcess(_ code: Int32) -> Never {
        #if canImport(Glibc)
        Glibc.exit(code)
        #elseif canImport(Musl)
        Musl.exit(code)
        #else
        Darwin.exit(code)
        #endif
    }
}

enum ExitStatus {
    static let unreachable: Int32 = 2
    static let dataError: Int32 = 3
    static let refused: Int32 = 4
}
