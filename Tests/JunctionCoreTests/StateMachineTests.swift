import NIOHTTP1
import Testing

@testable import JunctionCore

/// The exchange and connection state machines, driven without any I/O.
@Suite("State machines")
struct StateMachineTests {
    @Test("Connect failures retry (any method) until the budget is spent, then 502")
    func connectFailures() {
        var machine = ExchangeStateMachine(retries: 2, replayable: false, isUpgrade: false, poolName: "p")
        #expect(machine.connectFailed(reason: "refused") == .retry)
        #expect(machine.connectFailed(reason: "refused") == .retry)
        guard case .fail(let failure) = machine.connectFailed(reason: "refused") else {
            Issue.record("expected a failure")
            return
        }
        #expect(failure.status.code == 502)
        #expect(machine.state == .finished)
    }

    @Test("A failure before the response is retried only for replayable requests")
    func failureBeforeResponse() {
        var get = ExchangeStateMachine(retries: 1, replayable: true, isUpgrade: false, poolName: "p")
        #expect(get.connected() == .leave, "the response timer waits for the request's end")
        #expect(get.requestEnded() == .arm)
        #expect(get.upstreamFailed(reason: "reset") == .retry)
        #expect(get.state == .connecting)
        #expect(get.connected() == .arm, "the replayed request is whole at once")
        #expect(
            get.upstreamFailed(reason: "reset")
                == .fail(.badGateway("the backend closed the connection before answering (reset)"))
        )

        var post = ExchangeStateMachine(retries: 3, replayable: false, isUpgrade: false, poolName: "p")
        _ = post.connected()
        #expect(
            post.upstreamFailed(reason: "reset")
                == .fail(.badGateway("the backend closed the connection before answering (reset)"))
        )
    }

    @Test("A failure after the response started aborts the client connection")
    func failureDuringResponse() {
        var machine = ExchangeStateMachine(retries: 3, replayable: true, isUpgrade: false, poolName: "p")
        _ = machine.connected()
        #expect(machine.responseHeadReceived(Self.head(200)) == .forward)
        #expect(machine.upstreamFailed(reason: "reset") == .abort)
        #expect(machine.upstreamFailed(reason: "again") == .none)
    }

    @Test("Response timeout gives 504 only while waiting for the head")
    func responseTimeout() {
        var machine = ExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "ddp")
        _ = machine.connected()
        #expect(machine.responseTimedOut() == .fail(.upstreamTimeout(pool: "ddp")))
        var streaming = ExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "ddp")
        _ = streaming.connected()
        _ = streaming.responseHeadReceived(Self.head(200))
        #expect(streaming.responseTimedOut() == .none)
    }

    static func head(_ code: Int, keepAlive: Bool = true) -> HTTPResponseHead {
        var head = HTTPResponseHead(version: .http1_1, status: HTTPResponseStatus(statusCode: code))
        if !keepAlive { head.headers.add(name: "Connection", value: "close") }
        return head
    }

    @Test("A 101 to an upgrade request becomes a tunnel at its end; to anything else it is just relayed")
    func upgrades() {
        var upgrade = ExchangeStateMachine(retries: 0, replayable: true, isUpgrade: true, poolName: "p")
        _ = upgrade.connected()
        #expect(upgrade.responseHeadReceived(Self.head(101)) == .awaitUpgradeEnd)
        #expect(upgrade.state == .upgradeAccepted(Self.head(101)), "the 101 is kept until its end")
        #expect(upgrade.responseEnded() == .tunnel(Self.head(101)))
        #expect(upgrade.state == .tunnel)
        #expect(upgrade.upstreamFailed(reason: "closed") == .none, "the tunnel owns the connection now")
        let stillRunning = upgrade.cancelled()
        #expect(!stillRunning, "nor does the client's close concern the exchange")
        var refused = ExchangeStateMachine(retries: 0, replayable: true, isUpgrade: true, poolName: "p")
        _ = refused.connected()
        #expect(refused.responseHeadReceived(Self.head(403)) == .forward)
        var plain = ExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "p")
        _ = plain.connected()
        #expect(plain.responseHeadReceived(Self.head(101)) == .forward)
        var cut = ExchangeStateMachine(retries: 3, replayable: true, isUpgrade: true, poolName: "p")
        _ = cut.connected()
        _ = cut.responseHeadReceived(Self.head(101))
        #expect(
            cut.upstreamFailed(reason: "reset")
                == .fail(.badGateway("the backend closed the connection before answering (reset)")),
            "a 101 cut before its end is not retried: the backend took the upgrade"
        )
    }

    @Test(
        "The upstream connection is pooled only if the request was sent whole and keep-alive holds",
        arguments: [(true, true, true), (false, true, false), (true, false, false), (false, false, false)]
    )
    func reuse(requestComplete: Bool, keepAlive: Bool, reusable: Bool) {
        var machine = ExchangeStateMachine(retries: 0, replayable: false, isUpgrade: false, poolName: "p")
        _ = machine.connected()
        if requestComplete { _ = machine.requestEnded() }
        _ = machine.responseHeadReceived(Self.head(200, keepAlive: keepAlive))
        #expect(machine.state == .streamingResponse(upstreamKeepAlive: keepAlive))
        #expect(machine.responseEnded() == .finish(reusable: reusable))
        #expect(machine.state == .finished && !machine.isRunning)
        let again = machine.responseEnded()
        #expect(again == .none)
    }

    @Test("No backend at all is 503; no backend left after failed tries is 502")
    func noBackend() {
        var fresh = ExchangeStateMachine(retries: 2, replayable: true, isUpgrade: false, poolName: "p")
        #expect(fresh.noBackend(retryAfter: 3, triedAny: false) == .fail(.noHealthyBackend(pool: "p", retryAfter: 3)))
        var tried = ExchangeStateMachine(retries: 2, replayable: true, isUpgrade: false, poolName: "p")
        #expect(
            tried.noBackend(retryAfter: 3, triedAny: true)
                == .fail(.badGateway("no backend of pool p could be reached"))
        )
    }
}
