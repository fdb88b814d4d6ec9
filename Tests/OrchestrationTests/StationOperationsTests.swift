import ABSProtocol
import Foundation
import SQLiteLink
import StationDomain
import StationStore
import Testing
@testable import GatewayCore

/// The use cases in-process (UseCases/StationOperations.swift): the fake cabinet, the real store over an in-memory
/// SQLiteLink queue, a fixed clock. What crosses a boundary (MQTT, the control socket, Modbus, the file) stays in
/// GatewayTests.
@Suite struct MaintenanceUnlockTests {
    @Test func auditedRecordedThenTheDoorIsCommanded() async throws {
        let st = try Station(Regs.oneCabinet())
        let r = await st.operations.maintenanceUnlock(slot: 3, reason: "replace lock", by: .abs(requestID: "r-1", operatorID: "tech-1"))
        let done = try #require(r.value, "\(r)")
        #expect(done.slot == 3 && done.requestID == "r-1" && done.result == .ok && done.cabinet == nil)
        #expect(st.cabinet.commands == [.init(command: .unlock, slot: 3, seq: nil)])
        let audit = try await st.audit()
        #expect(audit.map(\.action) == ["maintenance.unlock"])
        #expect(audit.first?.actor == "operator:tech-1")
        #expect(audit.first?.timestamp == Station.now)
        #expect(audit.first?.detail.contains(#""request_id":"r-1""#) == true)
        #expect(st.events.payloads == [.maintenanceUnlock(slot: 3, operatorID: "tech-1", reason: "replace lock", requestID: "r-1")])
        // The MQTT adapter's reply data.
        #expect(CommandService.slotData(done) == SlotReplyData(slot: 3))
    }

    @Test func aTechnicianIsTheOperatorOnTheLocalPath() async throws {
        let st = try Station(Regs.oneCabinet())
        let done = try #require(await st.operations.maintenanceUnlock(slot: 2, reason: "maintenance", by: .technician(name: "ann")).value)
        #expect(done.requestID.hasPrefix("local-"))
        #expect(try await st.audit().map { "\($0.actor) \($0.action)" } == ["technician:ann maintenance.unlock"])
        #expect(st.events.payloads == [.maintenanceUnlock(slot: 2, operatorID: "technician:ann", reason: "maintenance", requestID: done.requestID)])
    }

    /// No audit, no door: for either adapter, the same refusal; nothing reaches the cabinet or ABS.
    @Test func auditNotWritableKeepsTheDoorShutForBothAdapters() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.refuseWrites(to: "audit")
        let fromABS = await st.operations.maintenanceUnlock(slot: 3, reason: "x", by: .abs(requestID: "r-2", operatorID: "tech-1"))
        let local = await st.operations.maintenanceUnlock(slot: 3, reason: "x", by: .technician(name: "ann"))
        guard case let .refused(a) = fromABS, case let .refused(b) = local, case .storageError = a, case .storageError = b else {
            Issue.record("expected storage errors: \(fromABS) \(local)")
            return
        }
        #expect(st.cabinet.commands.isEmpty, "an unaudited unlock reached the cabinet")
        #expect(st.events.all.isEmpty, "an unaudited unlock was announced to ABS")
        // The wire codes each adapter sends for it.
        let reply = CommandService.refusalReply(a)
        #expect(reply.ok == false && reply.code == .stationBusy && (reply.message ?? "").contains("audit"))
        #expect(b.controlCode == "storage_error")
        #expect(throws: ControlHandler.Failure.self) { try ControlHandler.unwrap(local) }

        // The store writes again: the same unlock opens the door.
        try await st.allowWrites(to: "audit")
        #expect(await st.operations.maintenanceUnlock(slot: 3, reason: "x", by: .technician(name: "ann")).value != nil)
        #expect(st.cabinet.commands.count == 1)
    }

    @Test func aSlotOutsideTheStationIsRefusedBeforeAnythingIsRecorded() async throws {
        let st = try Station(Regs.oneCabinet())
        for slot in [0, 6, 99] {
            let r = await st.operations.maintenanceUnlock(slot: slot, reason: "x", by: .abs(requestID: "r-\(slot)", operatorID: "op"))
            #expect(r.refusal == .invalidSlot("slot \(slot) outside 1…5"), "\(r)")
            #expect(r.refusal?.absCode == .invalidSlot && r.refusal?.controlCode == "invalid_slot")
        }
        #expect(try await st.audit().isEmpty)
        #expect(st.cabinet.commands.isEmpty)
    }

    @Test func aStaleCabinetIsRefusedBeforeAnythingIsRecorded() async throws {
        let st = try Station(Regs.oneCabinet(stale: true))
        let r = await st.operations.maintenanceUnlock(slot: 1, reason: "x", by: .technician(name: "ann"))
        guard case .cabinetUnreachable = r.refusal else { Issue.record("\(r)"); return }
        #expect(r.refusal?.absCode == .stationBusy && r.refusal?.controlCode == "cabinet_unreachable")
        #expect(try await st.audit().isEmpty)
        #expect(st.cabinet.commands.isEmpty && st.events.all.isEmpty)
    }

    /// Several cabinets: B not answering refuses only B's slots; A's slots are unlocked (with the cabinet in the reply).
    @Test func onlyTheSilentCabinetsSlotsAreRefused() async throws {
        let st = try Station(Regs.twoCabinets(bStale: true), cabinetIDs: ["A", "B"])
        let onB = await st.operations.maintenanceUnlock(slot: 6, reason: "x", by: .abs(requestID: "r-b", operatorID: "op"))
        #expect(onB.refusal?.message.contains("cabinet B") == true, "\(onB)")
        guard case .cabinetUnreachable = onB.refusal else { Issue.record("\(onB)"); return }
        let onA = try #require(await st.operations.maintenanceUnlock(slot: 3, reason: "x", by: .abs(requestID: "r-a", operatorID: "op")).value)
        #expect(onA.cabinet == "A" && onA.cabinetSlot == 3)
        #expect(CommandService.slotData(onA) == SlotReplyData(slot: 3, cabinet: "A", cabinetSlot: 3))
        #expect(st.cabinet.commands == [.init(command: .unlock, slot: 3, seq: nil)])
    }

    /// The controller refuses or does not confirm: the intent was recorded, so is the failure; the door is shut.
    @Test func aCabinetRefusalOrSilenceIsRecordedAsFailed() async throws {
        let st = try Station(Regs.oneCabinet())
        st.cabinet.answer(.result(.refused))
        let refused = await st.operations.maintenanceUnlock(slot: 1, reason: "x", by: .abs(requestID: "r-1", operatorID: "op"))
        #expect(refused.refusal == .cabinetRefused(.refused))
        #expect(refused.refusal?.absCode == .safeMode && refused.refusal?.controlCode == "cabinet_refused")
        st.cabinet.answer(.silent)
        let silent = await st.operations.maintenanceUnlock(slot: 1, reason: "x", by: .technician(name: "ann"))
        guard case .cabinetUnreachable = silent.refusal else { Issue.record("\(silent)"); return }
        #expect(silent.refusal?.absCode == .stationBusy)
        #expect(try await st.audit().map(\.action) == ["maintenance.unlock", "maintenance.unlock.failed",
                                                        "maintenance.unlock", "maintenance.unlock.failed"])
    }
}

@Suite struct SlotServiceTests {
    @Test func outOfServiceIsAuditedCommandedAndTheSlotReadAgain() async throws {
        let st = try Station(Regs.oneCabinet())
        let done = try #require(await st.operations.setSlotService(slot: 4, inService: false, reason: nil,
                                                                   by: .abs(requestID: "r-9", operatorID: nil)).value)
        #expect(done.inService == false && done.slot == 4)
        #expect(st.cabinet.commands == [.init(command: .outOfService, slot: 4, seq: nil)])
        #expect(st.cabinet.refreshed == [[4]])
        let audit = try await st.audit()
        #expect(audit.map { "\($0.actor) \($0.action)" } == ["abs:r-9 slot.out_of_service"])
        #expect(CommandService.slotData(done) == SlotReplyData(slot: 4, inService: false))

        let back = try #require(await st.operations.setSlotService(slot: 4, inService: true, reason: "fixed", by: .technician(name: "ann")).value)
        #expect(back.inService == true)
        #expect(st.cabinet.commands.last == .init(command: .returnToService, slot: 4, seq: nil))
        #expect(try await st.audit().last.map { "\($0.actor) \($0.action)" } == "technician:ann slot.in_service")
    }

    @Test func noAuditNoChange() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.refuseWrites(to: "audit")
        let r = await st.operations.setSlotService(slot: 4, inService: false, reason: nil, by: .abs(requestID: "r-1", operatorID: nil))
        guard case .storageError = r.refusal else { Issue.record("\(r)"); return }
        #expect(CommandService.refusalReply(r.refusal!).code == .stationBusy)
        #expect(st.cabinet.commands.isEmpty)
    }

    @Test func theControllersAnswersMapToOneRefusal() async throws {
        let st = try Station(Regs.oneCabinet())
        st.cabinet.answer(.result(.invalidSlot))
        let r = await st.operations.setSlotService(slot: 2, inService: false, reason: nil, by: .technician(name: "ann"))
        #expect(r.refusal == .invalidSlot("cabinet answered: invalid slot"))
        st.cabinet.answer(.result(.busy))
        let busy = await st.operations.setSlotService(slot: 2, inService: false, reason: nil, by: .technician(name: "ann"))
        #expect(busy.refusal == .cabinetRefused(.busy))
        #expect(st.cabinet.refreshed == [[2], [2]])   // read again whatever the answer
    }
}

@Suite struct SwapRequestTests {
    @Test func acceptedRecordedBeforeItsFirstDoorOpens() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()])
        let r = await st.operations.requestSwap(header: st.header("swap-1"), customerID: "cust-1", planInstanceID: nil, channel: "app")
        let a = try #require(r.value, "\(r)")
        #expect(a.kind == .exchange && a.issueSlot == 2 && a.returnSlot == 4 && a.requestID == "swap-1" && a.channel == "app")
        #expect(a.data == .swapAccepted(swapID: a.swapID, requestID: "swap-1", customerID: "cust-1", planInstanceID: "pi-1", kind: "exchange",
                                        returnSlot: 4, issueSlot: 2, channel: "app"))
        // Recorded (swap row, swap.accepted event, audit) …
        let inProgress = try await st.store.swapsInProgress()
        #expect(inProgress.map(\.swapID) == [a.swapID])
        #expect(try await st.store.events(fromSeq: nil, type: "swap.accepted", limit: 10, newestFirst: false).count == 1)
        #expect(try await st.audit().contains { $0.action == "swap.accepted" && $0.actor == "abs:swap-1" })
        // … and the return door is commanded with the seq recorded for it.
        var commands = st.cabinet.issued.makeAsyncIterator()
        let first = try #require(await commands.next())
        #expect(first.command == .unlock && first.slot == 4)
        #expect(first.seq != nil && first.seq == inProgress.first?.returnUnlockSeq)
        // A second request while it runs (one at a time): station_busy for both adapters.
        let second = await st.operations.requestSwap(header: st.header("swap-2"), customerID: "cust-1", planInstanceID: nil, channel: nil)
        #expect(second.refusal?.absCode == .stationBusy, "\(second)")
    }

    @Test(arguments: [
        ("no ready battery", SwapRefusalCode.noReadyBattery),
        ("unknown customer", .unknownCustomer),
        ("safe mode", .safeMode),
        ("stale cabinet", .safeMode),
        ("inactive", .inactive),
    ])
    func refusedWithTheDecisionsCode(_ situation: String, _ code: SwapRefusalCode) async throws {
        var station = Regs.oneCabinet(safeMode: situation == "safe mode", stale: situation == "stale cabinet")
        if situation == "no ready battery" { station.1 = [] }
        let st = try Station(station)
        try await st.cache([Station.entitlement(status: situation == "inactive" ? .inactive : .active)])
        let customer = situation == "unknown customer" ? "cust-404" : "cust-1"
        let r = await st.operations.requestSwap(header: st.header("swap-x"), customerID: customer, planInstanceID: nil, channel: nil)
        guard case let .swap(refusal) = r.refusal else { Issue.record("\(situation): \(r)"); return }
        #expect(refusal.code == code, "\(situation): \(refusal)")
        #expect(r.refusal?.absCode == ReplyCode(code))
        #expect(st.cabinet.commands.isEmpty)
        #expect(try await st.store.swapsInProgress().isEmpty)
        #expect(try await st.store.events(fromSeq: nil, type: "swap.rejected", limit: 10, newestFirst: false).count == 1)
    }

    /// A whole exchange in-process, driven as the SwapService drives it (evaluate on each change): the return door,
    /// the returned battery verified, the issue door, the battery taken: one transaction records the completion.
    @Test func anExchangeRunsToItsCompletionRecord() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()])
        let a = try #require(await st.operations.requestSwap(header: st.header("swap-run"), customerID: "cust-1", planInstanceID: nil, channel: nil).value)
        var commands = st.cabinet.issued.makeAsyncIterator()
        let returnSeq = try await st.store.swapsInProgress().first?.returnUnlockSeq
        let returnDoor = await commands.next()
        #expect(returnDoor == .init(command: .unlock, slot: 4, seq: returnSeq))
        // The rider returns the battery they hold into slot 4 and closes the door.
        st.cabinet.slot(4, Regs.slot(4, id: "B45-000123", soc: 150, doorOpens: 1))
        await st.coordinator.evaluate()
        let issue = try #require(await commands.next())
        #expect(issue.command == .unlock && issue.slot == 2)
        #expect(try await st.store.swapsInProgress().first?.stage == .awaitingPickup)
        // … takes the issued battery from slot 2 and closes that door.
        st.cabinet.slot(2, Regs.slot(2, empty: true, doorOpens: 1))
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().isEmpty)
        #expect(await st.coordinator.swapsInProgress == 0)
        let completed = try await st.store.events(fromSeq: nil, type: "swap.completed", limit: 10, newestFirst: false)
        #expect(completed.count == 1)
        let completedData = String(decoding: completed.first?.data ?? [], as: UTF8.self)
        #expect(completedData.contains(#""swap_id":"\#(a.swapID)""#), "\(completedData)")
        #expect(try await st.store.usage(key: a.swapID)?.state == .pending)
        #expect(try await st.store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 13)   // 12 + this swap, pending on top
        #expect(try await st.audit().contains { $0.action == "swap.completed" && $0.actor == "swap:\(a.swapID)" })
        #expect(st.cabinet.commands.map(\.slot) == [4, 2])
    }

    /// The rider never comes: at the return timeout (on the board's clock, moved here) the swap ends as aborted,
    /// with no usage record and nothing counted against the plan; the next swap may start.
    @Test func aReturnThatNeverComesEndsAtItsTimeout() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()])
        let a = try #require(await st.operations.requestSwap(header: st.header("swap-late"), customerID: "cust-1", planInstanceID: nil, channel: nil).value)
        var commands = st.cabinet.issued.makeAsyncIterator()
        _ = await commands.next()   // the return door
        let deadline = try #require(await st.coordinator.nextDeadline())
        #expect(deadline == Station.now.addingTimeInterval(120))
        st.wall.advance(119)
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().map(\.swapID) == [a.swapID])
        st.wall.advance(1)
        await st.coordinator.evaluate()
        #expect(try await st.store.swapsInProgress().isEmpty)
        let aborted = try await st.store.events(fromSeq: nil, type: "swap.aborted", limit: 10, newestFirst: false)
        let abortedData = String(decoding: aborted.first?.data ?? [], as: UTF8.self)
        #expect(aborted.count == 1 && abortedData.contains("return timeout"), "\(abortedData)")
        #expect(try await st.store.usage(key: a.swapID) == nil)
        #expect(try await st.store.effectiveEntitlement(planInstanceID: "pi-1")?.swapsUsed == 12)
        #expect(st.cabinet.commands.map(\.slot) == [4])
        #expect(await st.operations.requestSwap(header: st.header("swap-next"), customerID: "cust-1", planInstanceID: nil, channel: nil).value != nil)
    }

    /// Several cabinets: with B silent, the decision uses A's slots only.
    @Test func aSilentCabinetOnlyTakesItsOwnSlotsOut() async throws {
        let st = try Station(Regs.twoCabinets(bStale: true), cabinetIDs: ["A", "B"])
        try await st.cache([Station.entitlement()])
        let a = try #require(await st.operations.requestSwap(header: st.header("swap-ab"), customerID: "cust-1", planInstanceID: nil, channel: nil).value)
        #expect([1, 3].contains(a.issueSlot ?? 0) && a.returnSlot == 2, "\(a)")
    }

    /// The swap cannot be recorded: refused as a storage error (station_busy on the wire) and no door opens.
    @Test func notRecordedNoDoor() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()])
        try await st.refuseWrites(to: "swap")
        let r = await st.operations.requestSwap(header: st.header("swap-3"), customerID: "cust-1", planInstanceID: nil, channel: nil)
        guard case .storageError = r.refusal else { Issue.record("\(r)"); return }
        #expect(r.refusal?.absCode == .stationBusy && r.refusal?.controlCode == "storage_error")
        #expect(st.cabinet.commands.isEmpty, "a door opened for a swap that was not recorded")
        #expect(try await st.store.swapsInProgress().isEmpty)
    }
}

@Suite struct EntitlementUpdateTests {
    @Test func snapshotDeltaAndTheirEvents() async throws {
        let st = try Station(Regs.oneCabinet())
        let snap = await st.operations.applyEntitlements(.snapshot(version: 5, entitlements: [Station.entitlement(), Station.entitlement(customer: "cust-2", plan: "pi-2")],
                                                                   countedThroughSeq: nil), header: st.header)
        #expect(snap == .done(.snapshot(version: 5, count: 2)))
        #expect(try await st.store.effectiveEntitlements(customerID: "cust-2").map(\.planInstanceID) == ["pi-2"])

        let delta = await st.operations.applyEntitlements(.delta(baseVersion: 5, version: 6, upsert: [], remove: ["pi-2"], countedThroughSeq: nil),
                                                          header: st.header)
        #expect(delta == .done(.delta(version: 6, changes: 1)))
        #expect(try await st.store.effectiveEntitlements(customerID: "cust-2").isEmpty)
        let again = await st.operations.applyEntitlements(.delta(baseVersion: 5, version: 6, upsert: [], remove: ["pi-2"], countedThroughSeq: nil),
                                                          header: st.header)
        #expect(again == .done(.deltaAlreadyApplied(version: 6)))
        #expect(st.events.payloads == [.entitlementsApplied(kind: "snapshot", version: 5, count: 2),
                                       .entitlementsApplied(kind: "delta", version: 6, count: 1)])

        // A gap: a snapshot is needed; the reply carries the cache's version.
        let gap = await st.operations.applyEntitlements(.delta(baseVersion: 9, version: 10, upsert: [], remove: [], countedThroughSeq: nil),
                                                        header: st.header)
        guard case let .needSnapshot(current, _)? = gap.refusal else { Issue.record("\(gap)"); return }
        #expect(current == 6)
        let reply = CommandService.refusalReply(gap.refusal!)
        #expect(reply.code == .needSnapshot && (reply.data as? EntitlementsReplyData)?.currentVersion == 6)
    }

    @Test func aSnapshotInPartsSwapsInWithItsLastPart() async throws {
        let st = try Station(Regs.oneCabinet())
        let one = await st.operations.applyEntitlements(.part(snapshotID: "s-1", part: 2, parts: 2, version: 3, countedThroughSeq: nil,
                                                              entitlements: [Station.entitlement(customer: "cust-2", plan: "pi-2")]), header: st.header)
        #expect(one == .done(.partStaged(snapshotID: "s-1", part: 2, parts: 2, version: 3, missing: 1, firstMissing: [1], duplicate: false)))
        #expect(st.events.all.isEmpty)
        let two = await st.operations.applyEntitlements(.part(snapshotID: "s-1", part: 1, parts: 2, version: 3, countedThroughSeq: nil,
                                                              entitlements: [Station.entitlement()]), header: st.header)
        #expect(two == .done(.partsApplied(snapshotID: "s-1", part: 1, parts: 2, version: 3, count: 2)))
        #expect(st.events.payloads == [.entitlementsApplied(kind: "snapshot", version: 3, count: 2, snapshotID: "s-1", parts: 2)])
        let late = await st.operations.applyEntitlements(.part(snapshotID: "s-1", part: 2, parts: 2, version: 3, countedThroughSeq: nil,
                                                               entitlements: [Station.entitlement(customer: "cust-2", plan: "pi-2")]), header: st.header)
        #expect(late == .done(.partsAlreadyApplied(snapshotID: "s-1", part: 2, parts: 2, version: 3)))
        let reply = CommandService.reply(late)
        #expect(reply.ok && (reply.data as? EntitlementsReplyData)?.partsMissing == 0)
    }

    @Test func aStoreThatCannotWriteLeavesTheCacheAsItWas() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.cache([Station.entitlement()], version: 1)
        try await st.refuseWrites(to: "entitlement")
        let r = await st.operations.applyEntitlements(.delta(baseVersion: 1, version: 2, upsert: [Station.entitlement(customer: "cust-9", plan: "pi-9")],
                                                             remove: [], countedThroughSeq: nil), header: st.header)
        guard case .storageError = r.refusal else { Issue.record("\(r)"); return }
        #expect(CommandService.refusalReply(r.refusal!).code == .stationBusy)
        #expect(try await st.store.entitlementSyncState().version == 1)
        #expect(st.events.of(.entitlementsApplied).count == 1)   // the first snapshot's only
    }
}

@Suite struct UsageResendTests {
    static func record(_ key: String) -> UsageRecord {
        UsageRecord(idempotencyKey: key, subscriptionRef: "SUB/1", planInstanceID: "pi-1", customerID: "cust-1", stationID: "STN-T",
                    outletCode: "OUT-1", occurredAt: Station.now, recordedOffline: false,
                    lines: [.init(serviceID: "service-swap-count", quantity: 1, unit: "1")], swapID: key,
                    batteryOut: .init(id: "B45-2", socPercent: 99.5, slot: 2), batteryIn: nil)
    }

    @Test func aRejectedRecordIsQueuedAgainAndAudited() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.store.importUsage([Self.record("sw-1")], at: Station.now)
        try await st.store.markUsageRejected(key: "sw-1", error: "ValidationError", at: Station.now)
        let u = try #require(await st.operations.resendUsage(key: "sw-1", by: .technician(name: "local")).value)
        #expect(u.state == .pending)
        #expect(try await st.audit().map { "\($0.actor) \($0.action)" } == ["technician:local usage.resend"])

        let missing = await st.operations.resendUsage(key: "sw-404", by: .technician(name: "local"))
        #expect(missing.refusal == .notFound("no usage record sw-404") && missing.refusal?.controlCode == "not_found")
    }

    @Test func noAuditNothingQueued() async throws {
        let st = try Station(Regs.oneCabinet())
        try await st.store.importUsage([Self.record("sw-2")], at: Station.now)
        try await st.store.markUsageRejected(key: "sw-2", error: "ValidationError", at: Station.now)
        try await st.refuseWrites(to: "audit")
        let r = await st.operations.resendUsage(key: "sw-2", by: .technician(name: "local"))
        guard case .storageError = r.refusal else { Issue.record("\(r)"); return }
        #expect(try await st.store.usage(key: "sw-2")?.state == .rejected)
    }
}

@Suite struct InjectedStoreTests {
    /// `StationStore(writer:)` runs the same named migrations as a store on a file: the in-process tests run on the
    /// daemon's schema.
    @Test func anInMemoryStoreHasTheFilesMigrations() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("orchestration-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = try StationStore(path: dir.appendingPathComponent("station.sqlite").path)
        let memory = try StationStore(writer: DatabaseQueue())
        let sql = "SELECT identifier FROM grdb_migrations ORDER BY rowid"
        let onFile = try await file.read { db in try String.fetchAll(db, sql: sql) }
        let inMemory = try await memory.read { db in try String.fetchAll(db, sql: sql) }
        #expect(!onFile.isEmpty && inMemory == onFile)
        try await file.close()
    }
}
