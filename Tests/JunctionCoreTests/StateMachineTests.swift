import Testing

@testable import JunctionCore

/// The exchange and connection state machines, driven without any I/O.
@Suite("State machines")
struct StateMachineTests {
    @Test("Connect failures retry (any method) until the budget is spent, then 502")
    func connectFailures() {
        var machine = ProxyExchangeStateMachine(retries: 2, replayable: false, isUpgrade: false, poolName: "p")
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
        var get = ProxyExchangeStateMachine(retries: 1, replayable: true, isUpgrade: false, poolName: "p")
        get.connected()
        get.requestEnded()
        #expect(get.upstreamFailed(reason: "reset") == .retry)
        #expect(get.state == .connecting)
        get.connected()
        #expect(
            get.upstreamFailed(reason: "reset")
                == .fail(.badGateway("the backend closed the connection before answering (reset)"))
        )

        var post = ProxyExchangeStateMachine(retries: 3, replayable: false, isUpgrade: false, poolName: "p")
        post.connected()
        #expect(
            post.upstreamFailed(reason: "reset")
                == .fail(.badGateway("the backend closed the connection before answering (reset)"))
        )
    }

    @Test("A failure after the response started aborts the client connection")
    func failureDuringResponse() {
        var machine = ProxyExchangeStateMachine(retries: 3, replayable: true, isUpgrade: false, poolName: "p")
        machine.connected()
        #expect(machine.responseHeadReceived(status: 200) == .forward)
        #expect(machine.upstreamFailed(reason: "reset") == .abort)
        #expect(machine.upstreamFailed(reason: "again") == .none)
    }

    @Test("Response timeout gives 504 only while waiting for the head")
    func responseTimeout() {
        var machine = ProxyExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "ddp")
        machine.connected()
        #expect(machine.responseTimedOut() == .fail(.upstreamTimeout(pool: "ddp")))
        var streaming = ProxyExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "ddp")
        streaming.connected()
        _ = streaming.responseHeadReceived(status: 200)
        #expect(streaming.responseTimedOut() == .none)
    }

    @Test("A 101 to an upgrade request becomes a tunnel; to anything else it is just relayed")
    func upgrades() {
        var upgrade = ProxyExchangeStateMachine(retries: 0, replayable: true, isUpgrade: true, poolName: "p")
        upgrade.connected()
        #expect(upgrade.responseHeadReceived(status: 101) == .tunnel)
        #expect(upgrade.state == .tunnel)
        #expect(upgrade.upstreamFailed(reason: "closed") == .none, "the tunnel owns the connection now")
        var refused = ProxyExchangeStateMachine(retries: 0, replayable: true, isUpgrade: true, poolName: "p")
        refused.connected()
        #expect(refused.responseHeadReceived(status: 403) == .forward)
        var plain = ProxyExchangeStateMachine(retries: 0, replayable: true, isUpgrade: false, poolName: "p")
        plain.connected()
        #expect(plain.responseHeadReceived(status: 101) == .forward)
    }

    @Test("The upstream connection is pooled only if the request was sent whole and keep-alive holds")
    func reuse() {
        for (requestComplete, keepAlive, expected) in [(true, true, true), (false, true, false), (true, false, false)] {
            var machine = ProxyExchangeStateMachine(retries: 0, replayable: false, isUpgrade: false, poolName: "p")
            machine.connected()
            if requestComplete { machine.requestEnded() }
            _ = machine.responseHeadReceived(status: 200)
            #expect(machine.responseEnded(upstreamKeepAlive: keepAlive) == expected)
        }
    }

    @Test("No backend at all is 503; no backend left after failed tries is 502")
    func noBackend() {
        var fresh = ProxyExchangeStateMachine(retries: 2, replayable: true, isUpgrade: false, poolName: "p")
        #expect(fresh.noBackend(retryAfter: 3, triedAny: false) == .fail(.noHealthyBackend(pool: "p", retryAfter: 3)))
        var tried = ProxyExchangeStateMachine(retries: 2, replayable: true, isUpgrade: false, poolName: "p")
        #expect(
            tried.noBackend(retryAfter: 3, triedAny: true)
                == .fail(.badGateway("no backend of pool p could be reached"))
        )
    }
}
