import LedgerCore
import LedgerTestKit
import Testing
@testable import PeerNetwork

/// Pure tests of the handshake: two machines exchange messages in memory, as nio-http2's
/// state-machine tests shuttle frames between a client and a server.
@Suite struct HandshakeStateMachineTests {
    enum Outcome: Equatable {
        case pending
        case established(ValidatorIndex)
        case refused(HandshakeRefusal.Code)
    }

    struct Party {
        var machine: HandshakeStateMachine
        /// The common name TLS reports for the other party's certificate.
        var peerCommonName: String?
        var outbox: [[UInt8]] = []
        var outcome = Outcome.pending
        var refusal: HandshakeRefusal?

        mutating func apply(_ action: HandshakeStateMachine.Action) {
            switch action {
            case .none: break
            case .send(let bytes): outbox.append(bytes)
            case .established(let peer): outcome = .established(peer)
            case .refuse(let reason, let notify):
                if outcome == .pending {
                    outcome = .refused(reason.code)
                    refusal = reason
                }
                if let notify { outbox.append(notify) }
            }
        }
    }

    static let consortium = Fixtures.consortium
    static let nonceA = [UInt8](repeating: 0xA1, count: 32)
    static let nonceB = [UInt8](repeating: 0xB2, count: 32)

    static func configuration(_ consortium: TestConsortium = consortium, index: UInt16, key: (any SigningKey)? = nil,
                              version: UInt16 = HandshakeProtocol.version) -> HandshakeStateMachine.Configuration {
        let signingKey = key ?? consortium.validatorKeys[Int(min(index, UInt16(consortium.validatorKeys.count - 1)))]
        var configuration = HandshakeStateMachine.Configuration(
            genesis: consortium.genesis, suite: consortium.suite, localIndex: ValidatorIndex(index), signingKey: signingKey)
        configuration.protocolVersion = version
        return configuration
    }

    /// Runs a handshake between dialer `a` and acceptor `b` until neither has anything to send.
    static func run(_ a: inout Party, _ b: inout Party) {
        a.apply(a.machine.tlsEstablished(peerCommonName: a.peerCommonName))
        b.apply(b.machine.tlsEstablished(peerCommonName: b.peerCommonName))
        var rounds = 0
        while !(a.outbox.isEmpty && b.outbox.isEmpty) && rounds < 20 {
            rounds += 1
            let fromA = a.outbox, fromB = b.outbox
            a.outbox = []
            b.outbox = []
            for message in fromA where b.outcome == .pending { b.apply(b.machine.receive(message)) }
            for message in fromB where a.outcome == .pending { a.apply(a.machine.receive(message)) }
        }
    }

    /// Dialer v1 (expecting v0) against acceptor v0, with optional changes to either side.
    static func pair(dialer: HandshakeStateMachine.Configuration = configuration(index: 1),
                     dialerExpects: UInt16 = 0,
                     acceptor: HandshakeStateMachine.Configuration = configuration(index: 0),
                     dialerSeesName: String? = "node-0", acceptorSeesName: String? = "node-1") -> (dialer: Party, acceptor: Party) {
        var a = Party(machine: HandshakeStateMachine(configuration: dialer, role: .dialer(expecting: ValidatorIndex(dialerExpects)), localNonce: nonceA),
                      peerCommonName: dialerSeesName)
        var b = Party(machine: HandshakeStateMachine(configuration: acceptor, role: .acceptor, localNonce: nonceB),
                      peerCommonName: acceptorSeesName)
        run(&a, &b)
        return (a, b)
    }

    @Test func matchingValidatorsAuthenticateEachOther() {
        let (dialer, acceptor) = Self.pair()
        #expect(dialer.outcome == .established(0))
        #expect(acceptor.outcome == .established(1))
        #expect(dialer.machine.establishedPeer == 0)
        #expect(acceptor.machine.establishedPeer == 1)
    }

    @Test func wrongChainIDIsRefused() {
        let other = TestConsortium(validators: 4, chainID: "another-chain")
        let (dialer, acceptor) = Self.pair(dialer: Self.configuration(other, index: 1))
        #expect(acceptor.outcome == .refused(.chainMismatch))
        #expect(acceptor.refusal?.message.contains("another-chain") == true)
        #expect(dialer.outcome == .refused(.chainMismatch))
    }

    @Test func wrongGenesisHashIsRefused() {
        let other = TestConsortium(validators: 4, consensus: ConsensusParameters(checkpointInterval: 32))
        #expect(other.genesis.chainID == Self.consortium.genesis.chainID)
        let (dialer, acceptor) = Self.pair(dialer: Self.configuration(other, index: 1))
        #expect(acceptor.outcome == .refused(.genesisMismatch))
        #expect(dialer.outcome == .refused(.genesisMismatch))
    }

    @Test func unknownValidatorIndexIsRefused() {
        let (_, acceptor) = Self.pair(dialer: Self.configuration(index: 9, key: Self.consortium.validatorKeys[1]))
        #expect(acceptor.outcome == .refused(.unknownValidator))
        #expect(acceptor.refusal?.message.contains("index 9") == true)
    }

    @Test func signatureByAnotherKeyIsRefused() {
        // Claims v1 (and has node-1's certificate) but holds v2's consensus key.
        let (dialer, acceptor) = Self.pair(dialer: Self.configuration(index: 1, key: Self.consortium.validatorKeys[2]))
        #expect(acceptor.outcome == .refused(.badSignature))
        #expect(dialer.outcome == .refused(.refusedByPeer))
        #expect(dialer.refusal?.message.contains("badSignature") == true)
    }

    @Test func certificateNameMustMatchTheClaimedValidator() {
        let (dialer, acceptor) = Self.pair(acceptorSeesName: "node-2")
        #expect(acceptor.outcome == .refused(.certificateNameMismatch))
        #expect(acceptor.refusal?.message.contains("node-2") == true)
        #expect(dialer.outcome == .refused(.refusedByPeer))
        let (_, noName) = Self.pair(acceptorSeesName: nil)
        #expect(noName.outcome == .refused(.certificateNameMismatch))
    }

    @Test func versionMismatchIsRefused() {
        let (dialer, acceptor) = Self.pair(dialer: Self.configuration(index: 1, version: 2))
        #expect(acceptor.outcome == .refused(.versionMismatch))
        #expect(acceptor.refusal?.message.contains("version 2") == true)
        #expect(dialer.outcome == .refused(.versionMismatch))
    }

    @Test func cryptoSuiteMismatchIsRefusedWithTheSuiteNames() throws {
        let sm2 = TestConsortium(suite: try CryptoSuites.make(.sm2SM3), validators: 4)
        let (dialer, acceptor) = Self.pair(dialer: Self.configuration(sm2, index: 1))
        #expect(acceptor.outcome == .refused(.cryptoSuiteMismatch))
        let message = acceptor.refusal?.message ?? ""
        #expect(message.contains("sm2-sm3") && message.contains("ed25519-sha256"))
        #expect(dialer.outcome == .refused(.cryptoSuiteMismatch))
    }

    @Test func acceptorRefusesALowerIndexDialing() {
        // v1 dials v2: against the rule (the higher index dials the lower).
        let (_, acceptor) = Self.pair(dialerExpects: 2, acceptor: Self.configuration(index: 2),
                                      dialerSeesName: "node-2", acceptorSeesName: "node-1")
        #expect(acceptor.outcome == .refused(.wrongDirection))
    }

    @Test func dialerRefusesAnUnexpectedValidator() {
        // v3 dials the address of v0, but v1 answers.
        let (dialer, _) = Self.pair(dialer: Self.configuration(index: 3), dialerExpects: 0,
                                    acceptor: Self.configuration(index: 1), dialerSeesName: "node-1", acceptorSeesName: "node-3")
        #expect(dialer.outcome == .refused(.unexpectedValidator))
    }

    @Test func connectionToItselfIsRefused() {
        let (_, acceptor) = Self.pair(dialer: Self.configuration(index: 0), dialerExpects: 0,
                                      dialerSeesName: "node-0", acceptorSeesName: "node-0")
        #expect(acceptor.outcome == .refused(.selfConnection))
    }

    @Test func garbageAndOutOfOrderMessagesAreRefused() {
        var machine = HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor, localNonce: Self.nonceA)
        // A frame before TLS finished.
        guard case .refuse(let early, _) = machine.receive([1, 2, 3]) else { Issue.record("expected a refusal"); return }
        #expect(early.code == .protocolViolation)

        for garbage: [UInt8] in [[], [0xFF, 0, 1], [1], [1, 0, 1, 1, 0xFF, 0xFF, 0xFF, 0xFF], Array(repeating: 7, count: 5000)] {
            var fresh = HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor, localNonce: Self.nonceA)
            _ = fresh.tlsEstablished(peerCommonName: "node-1")
            guard case .refuse(let reason, let notify) = fresh.receive(garbage) else {
                Issue.record("garbage \(garbage.prefix(8)) was not refused")
                continue
            }
            #expect(reason.code == .malformedMessage || reason.code == .versionMismatch)
            #expect(notify != nil)
            #expect(fresh.receive(garbage) == .none)  // nothing more after a refusal
        }

        // A proof before the hello.
        var early2 = HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor, localNonce: Self.nonceA)
        _ = early2.tlsEstablished(peerCommonName: "node-1")
        guard case .refuse(let order, _) = early2.receive(HandshakeProtocol.acceptMessage) else { Issue.record("expected a refusal"); return }
        #expect(order.code == .protocolViolation)
    }

    @Test func aProofFromAnotherConnectionDoesNotVerify() throws {
        // Record v1's proof from one connection, then replay it on another (different nonce).
        var first = Party(machine: HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor, localNonce: Self.nonceB),
                          peerCommonName: "node-1")
        var dialer = Party(machine: HandshakeStateMachine(configuration: Self.configuration(index: 1), role: .dialer(expecting: 0),
                                                          localNonce: Self.nonceA), peerCommonName: "node-0")
        Self.run(&dialer, &first)
        #expect(first.outcome == .established(1))

        // The replayer sends v1's hello with the old nonce, then v1's old proof.
        let hello = HandshakeProtocol.Hello(version: 1, suiteCode: Self.consortium.suite.id.code, chainID: Self.consortium.genesis.chainID,
                                            genesisHash: Self.consortium.genesis.hash(suite: Self.consortium.suite), index: 1, nonce: Self.nonceA)
        let oldProofMessage = HandshakeProtocol.proofMessage(genesisHash: hello.genesisHash, signer: 1, verifier: 0,
                                                             signerNonce: Self.nonceA, verifierNonce: Self.nonceB)
        let oldProof = try Self.consortium.validatorKeys[1].signature(for: oldProofMessage)
        var second = HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor,
                                           localNonce: [UInt8](repeating: 0xC3, count: 32))
        _ = second.tlsEstablished(peerCommonName: "node-1")
        guard case .send = second.receive(hello.encoded) else { Issue.record("hello should pass"); return }
        guard case .refuse(let reason, _) = second.receive(HandshakeProtocol.encodeProof(oldProof)) else {
            Issue.record("a replayed proof was accepted"); return
        }
        #expect(reason.code == .badSignature)
    }

    @Test func timeoutRefusesOnlyUnfinishedHandshakes() {
        var machine = HandshakeStateMachine(configuration: Self.configuration(index: 0), role: .acceptor, localNonce: Self.nonceA)
        _ = machine.tlsEstablished(peerCommonName: "node-1")
        guard case .refuse(let reason, _) = machine.timedOut() else { Issue.record("expected a timeout refusal"); return }
        #expect(reason.code == .timeout)
        let (_, acceptor) = Self.pair()
        var done = acceptor.machine
        #expect(done.timedOut() == .none)
    }

    @Test func refusalCodesKeepTheirWireNumbers() {
        for code in HandshakeRefusal.Code.allCases {
            #expect(HandshakeRefusal.Code(wireCode: code.wireCode) == code)
        }
        #expect(HandshakeRefusal.Code.versionMismatch.wireCode == 1)
        #expect(HandshakeRefusal.Code.refusedByPeer.wireCode == 16)
        #expect(HandshakeRefusal.Code(wireCode: 0) == nil)
    }

    @Test func proofMessageLayout() {
        let hash = Self.consortium.genesis.hash(suite: Self.consortium.suite)
        let message = HandshakeProtocol.proofMessage(genesisHash: hash, signer: 3, verifier: 1, signerNonce: Self.nonceA, verifierNonce: Self.nonceB)
        #expect(message.count == 16 + 32 + 2 + 2 + 32 + 32)
        #expect(Array(message.prefix(16)) == Array("SCF-HANDSHAKE-v1".utf8))
        #expect(Array(message[16..<48]) == hash.bytes)
        #expect(Array(message[48..<52]) == [0, 3, 0, 1])
        #expect(Array(message[52..<84]) == Self.nonceA)
        #expect(Array(message[84...]) == Self.nonceB)
    }
}
