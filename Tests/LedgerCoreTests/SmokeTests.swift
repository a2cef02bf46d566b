import LedgerCore
import LedgerTestKit
import Testing

@Test func supplyChainStoryEndToEnd() throws {
    var ledger = Ledger()
    let (root, first) = try ledger.activeReceivable(face: 1_000_000_00)
    #expect(ledger.root(root).status == .active)
    #expect(try ledger.submit(TestConsortium.tier1, .transfer(fragment: first, to: TestConsortium.tier2, amount: 400_000_00)) == nil)
    let toTier2 = ledger.child(first, 0)
    #expect(ledger.fragment(toTier2).holder == TestConsortium.tier2)
    #expect(try ledger.submit(TestConsortium.tier2, .transfer(fragment: toTier2, to: TestConsortium.tier3, amount: 100_000_00)) == nil)
    let toTier3 = ledger.child(toTier2, 0)
    #expect(try ledger.submit(TestConsortium.tier3, .requestFinancing(fragment: toTier3, bank: TestConsortium.bankA, amount: Money(minor: 95_000_00, .cny))) == nil)
    let request = ledger.chain.blocks.last!.block.transactions[0].id
    #expect(try ledger.submit(TestConsortium.bankA, .approveFinancing(request: request, advance: 95_000_00)) == nil)
    #expect(ledger.fragment(toTier3).holder == TestConsortium.bankA)
    let second = try ledger.submit(TestConsortium.tier3, .requestFinancing(fragment: toTier3, bank: TestConsortium.bankB, amount: Money(minor: 95_000_00, .cny)))
    #expect(second.code == .alreadyFinanced)
    ledger.date = "2026-07-01"
    #expect(try ledger.submit(TestConsortium.core, .settle(root: root, amount: 1_000_000_00, paymentReference: "WIRE-1")) == nil)
    #expect(ledger.root(root).status == .closed)
    #expect(ledger.root(root).settled == 1_000_000_00)
}
