import ABSProtocol
import StationDomain

extension OperationRefusal {
    /// The ABS reply code of a refusal (abs-mqtt.md, "Replies"). A store or cabinet that cannot be used now is
    /// `station_busy` (ABS sends the command again later); a controller's refusal of a slot command is `safe_mode`
    /// (out of service, e-stop, safe mode, a jammed lock), its `invalid slot` answer `invalid_slot`.
    public var absCode: ReplyCode {
        switch self {
        case .invalidSlot: .invalidSlot
        case .cabinetUnreachable, .storageError: .stationBusy
        case let .cabinetRefused(result): result == .invalidSlot ? .invalidSlot : .safeMode
        case .notFound, .malformed: .malformed
        case let .swap(r): ReplyCode(r.code)
        case .needSnapshot: .needSnapshot
        }
    }
}
