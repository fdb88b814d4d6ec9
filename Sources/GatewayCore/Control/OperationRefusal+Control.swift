extension OperationRefusal {
    /// The local control API's error code of a refusal (docs/control-api.md, "Errors").
    public var controlCode: String {
        switch self {
        case .invalidSlot: "invalid_slot"
        case .cabinetUnreachable: "cabinet_unreachable"
        case .cabinetRefused: "cabinet_refused"
        case .storageError: "storage_error"
        case .notFound: "not_found"
        case .malformed: "bad_request"
        case let .swap(r): r.code.rawValue
        case .needSnapshot: "need_snapshot"
        }
    }
}
