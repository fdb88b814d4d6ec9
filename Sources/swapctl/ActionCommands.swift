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
import ControlProtocol
import StationDomain
import StationSupport

// Technician actions through the daemon: credential required, audited.

extension SwapCtl {
    struct Unlock: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Maintenance unlock of one slot (technician credential required; audited; published as maintenance.unlock).")
        @Argument(help: "Slot: station-wide number or cabinet/slot (B/3).") var slot: String
        @OptionGroup var tech: TechnicianOptions
        @OptionGroup var daemon: DaemonOptions

        func validate() throws { try validateSlotArgument(slot) }

        func run() throws {
            var r = ControlRequest(op: "unlock")
            r.setSlot(slot); r.technician = tech.technician; r.credential = try tech.credential(); r.reason = tech.reason
            try daemon.run(r, as: ActionView.self) { print("slot \($0.slot) unlocked (\($0.result)); the door re-locks when closed") }
        }
    }

    struct Service: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Take a slot out of service or back into service (technician credential required; audited).")
        @Argument(help: "Slot: station-wide number or cabinet/slot (B/3).") var slot: String
        @Flag(exclusivity: .exclusive, help: "out: no swap uses the slot; in: back into service.")
        var mode: ServiceMode
        @OptionGroup var tech: TechnicianOptions
        @OptionGroup var daemon: DaemonOptions

        enum ServiceMode: EnumerableFlag { case out, `in` }

        func validate() throws { try validateSlotArgument(slot) }

        func run() throws {
            var r = ControlRequest(op: "service")
            r.setSlot(slot); r.inService = mode == .in; r.technician = tech.technician; r.credential = try tech.credential(); r.reason = tech.reason
            try daemon.run(r, as: ActionView.self) { print("slot \($0.slot) \(mode == .in ? "back in service" : "out of service") (\($0.result))") }
        }
    }

    struct LocalSwap: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "swap",
            abstract: "Request a swap as the station's local terminal does (decided from the cached entitlements, also offline).")
        @Argument(help: "The customer id.") var customer: String
        @Option(help: "The plan instance (when the customer has several).") var plan: String?
        @OptionGroup var daemon: DaemonOptions

        func run() throws {
            var r = ControlRequest(op: "swap")
            r.customerID = customer; r.planInstanceID = plan
            let v = try daemon.client().call(r, as: SwapReplyView.self)
            if daemon.json { printJSON(v) } else {
                print(v.accepted ? "accepted (\(v.requestID)): \(v.data ?? "")" : "refused: \(v.code ?? "?") \(v.message ?? "")")
            }
            if !v.accepted { throw ExitCode(ExitStatus.refused) }
        }
    }
}
