import Testing
@testable import Supervision

@Suite struct AlertIdentityTests {
    @Test func sha256KnownVectors() {
        // FIPS 180-2 examples.
        #expect(SHA256.hexDigest(of: Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hexDigest(of: [UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        // 56 bytes: the padding needs a second block.
        #expect(SHA256.hexDigest(of: Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8))
            == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
    }

    @Test func idIsStableValidAndSeparatesItsParts() throws {
        let id = AlertId(rule: .xk02, subjectType: .approvalCase, subjectKey: "C2026021201", episode: "")
        #expect(id == AlertId(rule: .xk02, subjectType: .approvalCase, subjectKey: "C2026021201", episode: ""))
        #expect(id.rawValue.hasPrefix("XK02-"))
        #expect(id.rawValue.count == 37)
        let allowed = Set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-")
        #expect(id.rawValue.allSatisfy { allowed.contains($0) })
        // Subject keys with characters outside the AlertId pattern still give a valid id.
        let recordId = AlertId(rule: .xk08, subjectType: .record, subjectKey: "Step:C1/02/2026-03-02T10:00:00+08:00", episode: "")
        #expect(recordId.rawValue.allSatisfy { allowed.contains($0) })
        // Other rule, other subject, other episode, or the same text split differently: other ids.
        #expect(id != AlertId(rule: .xk01, subjectType: .approvalCase, subjectKey: "C2026021201", episode: ""))
        #expect(id != AlertId(rule: .xk02, subjectType: .approvalCase, subjectKey: "C2026021202", episode: ""))
        #expect(id != AlertId(rule: .xk02, subjectType: .approvalCase, subjectKey: "C2026021201", episode: "x"))
        #expect(AlertId(rule: .xk03, subjectType: .approvalCase, subjectKey: "ab", episode: "c")
            != AlertId(rule: .xk03, subjectType: .approvalCase, subjectKey: "a", episode: "bc"))
    }
}

@Suite struct AlertLifeTests {
    func openAlert(_ rule: RuleCode = .xk02) throws -> AlertRecord {
        AlertRecord(raising: AlertCandidate(
            rule: rule, subjectKey: "C1", deptCode: testDept, raisedAt: try time("2026-02-27T00:00:00"),
            detail: "overdue", responseDue: try time("2026-03-04T00:00:00")))
    }

    @Test func fullLifeIncrementsRevisionAndStateAt() throws {
        let raised = try openAlert()
        #expect(raised.state == .open)
        #expect(raised.revision == 1)
        #expect(raised.stateAt == (try time("2026-02-27T00:00:00")))

        let acked = try raised.applying(.acknowledge(explanation: "窗口人员休假，已补办"), at: time("2026-03-02T09:00:00"))
        #expect(acked.state == .acknowledged)
        #expect(acked.revision == 2)
        #expect(acked.explanation == "窗口人员休假，已补办")
        #expect(acked.stateAt == (try time("2026-03-02T09:00:00")))

        let corrected = try acked.applying(.markCorrected, at: time("2026-03-03T09:00:00"))
        #expect(corrected.state == .corrected)
        #expect(corrected.revision == 3)

        let closed = try corrected.applying(.close, at: time("2026-03-04T09:00:00"))
        #expect(closed.state == .closed)
        #expect(closed.revision == 4)
        #expect(closed.stateAt == (try time("2026-03-04T09:00:00")))
        #expect(closed.state.isFinal)
        // Everything raised stays as raised.
        #expect(closed.raisedAt == raised.raisedAt && closed.responseDue == raised.responseDue && closed.id == raised.id)
    }

    @Test(arguments: [
        (AlertState.open, AlertAction.markCorrected),
        (.open, .close),
        (.acknowledged, .acknowledge(explanation: "again")),
        (.acknowledged, .close),
        (.corrected, .markCorrected),
        (.closed, .acknowledge(explanation: "late")),
        (.closed, .close),
    ])
    func illegalTransitionsAreTypedErrors(from state: AlertState, action: AlertAction) throws {
        var alert = try openAlert()
        let path: [AlertAction] = [.acknowledge(explanation: "why"), .markCorrected, .close]
        let steps = [AlertState.open, .acknowledged, .corrected, .closed].firstIndex(of: state) ?? 0
        for (offset, step) in path.prefix(steps).enumerated() {
            alert = try alert.applying(step, at: time("2026-03-0\(offset + 1)T09:00:00"))
        }
        #expect(alert.state == state)
        #expect(throws: AlertTransitionError.notAllowed(alertId: alert.id, from: state, action: action.name)) {
            try alert.applying(action, at: time("2026-03-09T09:00:00"))
        }
    }

    @Test func blankExplanationIsRefused() throws {
        let alert = try openAlert()
        #expect(throws: AlertTransitionError.blankExplanation(alertId: alert.id)) {
            try alert.applying(.acknowledge(explanation: " \u{3000}"), at: time("2026-03-02T09:00:00"))
        }
    }

    @Test func onlySelfClearingRulesResolve() throws {
        let camera = try openAlert(.sp01)
        let resolved = try camera.applying(.resolve, at: time("2026-02-27T10:00:00"))
        #expect(resolved.state == .resolved)
        #expect(resolved.revision == 2)
        let ackedCamera = try camera.applying(.acknowledge(explanation: "线路检修"), at: time("2026-02-27T09:00:00"))
        #expect(try ackedCamera.applying(.resolve, at: time("2026-02-27T10:00:00")).state == .resolved)
        #expect(throws: AlertTransitionError.notAllowed(alertId: camera.id, from: .resolved, action: "resolve")) {
            try resolved.applying(.resolve, at: time("2026-02-27T11:00:00"))
        }
        let overdue = try openAlert(.xk02)
        #expect(throws: AlertTransitionError.ruleCannotResolveByItself(alertId: overdue.id, rule: .xk02)) {
            try overdue.applying(.resolve, at: time("2026-02-27T10:00:00"))
        }
    }

    @Test func actionBeforeTheCurrentStateTimeIsRefused() throws {
        let alert = try openAlert()
        #expect(throws: AlertTransitionError.timeBeforeCurrentState(
            alertId: alert.id, stateAt: try time("2026-02-27T00:00:00"), actionAt: try time("2026-02-26T23:59:59"))) {
            try alert.applying(.acknowledge(explanation: "x"), at: time("2026-02-26T23:59:59"))
        }
    }
}

@Suite struct AlertTextLimitTests {
    @Test func detailIsClippedToTwoThousandXSDCharacters() throws {
        // "é" written as e + combining acute is one Swift Character but two XSD characters (scalars):
        // 1500 of them are 3000 scalars, clipped to 2000 scalars.
        let decomposed = String(repeating: "e\u{301}", count: 1500)
        let candidate = AlertCandidate(rule: .xk03, subjectKey: "C1", deptCode: testDept,
                                       raisedAt: try time("2026-03-02T10:00:00"), detail: decomposed, responseDue: nil)
        #expect(candidate.detail.unicodeScalars.count == 2000)
    }
}
