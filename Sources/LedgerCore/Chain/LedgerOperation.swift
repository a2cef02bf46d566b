/// What a transaction asks the ledger to do. Who may sign each kind is enforced by the state
/// transition (`Rules/Execution.swift`), not here.
public enum LedgerOperation: Hashable, Sendable {
    /// Operator: admit a new member.
    case registerMember(Member)
    /// Operator: suspend, blacklist or reinstate (`.active`) a member.
    case setMemberStatus(member: MemberID, status: MemberStatus, reason: String)
    /// Creditor (supplier): propose a receivable the debtor must confirm.
    case proposeReceivable(ReceivableTerms)
    /// Debtor (core enterprise): issue a receivable the creditor must accept.
    case issueReceivable(ReceivableTerms)
    /// Debtor: confirm a proposed receivable (确权), making it binding and creating its first fragment.
    case confirmReceivable(ReceivableID)
    /// Creditor: accept an issued receivable, creating its first fragment.
    case acceptReceivable(ReceivableID)
    /// The counterparty refuses a proposal (debtor) or an issue (creditor).
    case rejectReceivable(ReceivableID, reason: String)
    /// The initiator takes back a proposal or issue the counterparty has not acted on.
    case withdrawReceivable(ReceivableID)
    /// Holder: transfer `amount` of a fragment to `to`; the whole fragment if amount equals the
    /// outstanding amount, otherwise a split into the transferred part and a remainder.
    case transfer(fragment: FragmentID, to: MemberID, amount: MinorUnits)
    /// Holder: ask `bank` to finance the fragment, advancing up to `amount`. Locks the fragment.
    case requestFinancing(fragment: FragmentID, bank: MemberID, amount: Money)
    /// Bank: approve a pending request, advancing `advance`; the bank becomes the holder.
    case approveFinancing(request: Hash, advance: MinorUnits)
    /// Bank: refuse a pending request, unlocking the fragment.
    case rejectFinancing(request: Hash, reason: String)
    /// Debtor, at or after maturity: pay `amount` on a root, shared among the live fragments'
    /// holders in proportion to what each is owed (the whole outstanding when it equals the total).
    case settle(root: ReceivableID, amount: MinorUnits, paymentReference: String)
    /// Holder, after maturity: write off what is still outstanding on a fragment.
    case writeOff(fragment: FragmentID, reason: String)
    /// Operator or regulator: freeze a fragment (court order, dispute); it cannot move, be financed or settled.
    case freeze(fragment: FragmentID, reason: String)
    case unfreeze(fragment: FragmentID, reason: String)
    /// Invoice verifier: record what it found when it checked an invoice.
    case attestInvoice(InvoiceKey, status: InvoiceStatus, evidenceHash: Hash?)
    /// Original creditor or a current holder: replace a voided or red-reversed invoice on a root.
    case replaceInvoice(root: ReceivableID, old: InvoiceKey, new: Invoice)

    /// A stable name for tables, metrics and the CLI.
    public var kind: String {
        switch self {
        case .registerMember: "register-member"
        case .setMemberStatus: "set-member-status"
        case .proposeReceivable: "propose"
        case .issueReceivable: "issue"
        case .confirmReceivable: "confirm"
        case .acceptReceivable: "accept"
        case .rejectReceivable: "reject"
        case .withdrawReceivable: "withdraw"
        case .transfer: "transfer"
        case .requestFinancing: "request-financing"
        case .approveFinancing: "approve-financing"
        case .rejectFinancing: "reject-financing"
        case .settle: "settle"
        case .writeOff: "write-off"
        case .freeze: "freeze"
        case .unfreeze: "unfreeze"
        case .attestInvoice: "attest-invoice"
        case .replaceInvoice: "replace-invoice"
        }
    }
}

extension LedgerOperation: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        switch self {
        case .registerMember(let member):
            writer.write(UInt8(1)); writer.write(member)
        case .setMemberStatus(let member, let status, let reason):
            writer.write(UInt8(2)); writer.write(member); writer.write(status.rawValue); writer.write(reason)
        case .proposeReceivable(let terms):
            writer.write(UInt8(3)); writer.write(terms)
        case .issueReceivable(let terms):
            writer.write(UInt8(4)); writer.write(terms)
        case .confirmReceivable(let root):
            writer.write(UInt8(5)); writer.write(root)
        case .acceptReceivable(let root):
            writer.write(UInt8(6)); writer.write(root)
        case .rejectReceivable(let root, let reason):
            writer.write(UInt8(7)); writer.write(root); writer.write(reason)
        case .withdrawReceivable(let root):
            writer.write(UInt8(8)); writer.write(root)
        case .transfer(let fragment, let to, let amount):
            writer.write(UInt8(9)); writer.write(fragment); writer.write(to); writer.write(amount)
        case .requestFinancing(let fragment, let bank, let amount):
            writer.write(UInt8(10)); writer.write(fragment); writer.write(bank); writer.write(amount)
        case .approveFinancing(let request, let advance):
            writer.write(UInt8(11)); writer.write(request); writer.write(advance)
        case .rejectFinancing(let request, let reason):
            writer.write(UInt8(12)); writer.write(request); writer.write(reason)
        case .settle(let root, let amount, let reference):
            writer.write(UInt8(13)); writer.write(root); writer.write(amount); writer.write(reference)
        case .writeOff(let fragment, let reason):
            writer.write(UInt8(14)); writer.write(fragment); writer.write(reason)
        case .freeze(let fragment, let reason):
            writer.write(UInt8(15)); writer.write(fragment); writer.write(reason)
        case .unfreeze(let fragment, let reason):
            writer.write(UInt8(16)); writer.write(fragment); writer.write(reason)
        case .attestInvoice(let key, let status, let evidence):
            writer.write(UInt8(17)); writer.write(key); writer.write(status.rawValue); writer.write(evidence)
        case .replaceInvoice(let root, let old, let new):
            writer.write(UInt8(18)); writer.write(root); writer.write(old); writer.write(new)
        }
    }

    public init(from reader: inout CanonicalReader) throws {
        let tag = try reader.readUInt8()
        switch tag {
        case 1: self = .registerMember(try reader.read())
        case 2:
            let member: MemberID = try reader.read()
            guard let status = MemberStatus(rawValue: try reader.readUInt8()) else { throw reader.error("unknown member status") }
            self = .setMemberStatus(member: member, status: status, reason: try reader.readString())
        case 3: self = .proposeReceivable(try reader.read())
        case 4: self = .issueReceivable(try reader.read())
        case 5: self = .confirmReceivable(try reader.read())
        case 6: self = .acceptReceivable(try reader.read())
        case 7: self = .rejectReceivable(try reader.read(), reason: try reader.readString())
        case 8: self = .withdrawReceivable(try reader.read())
        case 9: self = .transfer(fragment: try reader.read(), to: try reader.read(), amount: try reader.read())
        case 10: self = .requestFinancing(fragment: try reader.read(), bank: try reader.read(), amount: try reader.read())
        case 11: self = .approveFinancing(request: try reader.read(), advance: try reader.read())
        case 12: self = .rejectFinancing(request: try reader.read(), reason: try reader.readString())
        case 13: self = .settle(root: try reader.read(), amount: try reader.read(), paymentReference: try reader.readString())
        case 14: self = .writeOff(fragment: try reader.read(), reason: try reader.readString())
        case 15: self = .freeze(fragment: try reader.read(), reason: try reader.readString())
        case 16: self = .unfreeze(fragment: try reader.read(), reason: try reader.readString())
        case 17:
            let key: InvoiceKey = try reader.read()
            guard let status = InvoiceStatus(rawValue: try reader.readUInt8()) else { throw reader.error("unknown invoice status") }
            self = .attestInvoice(key, status: status, evidenceHash: try reader.readOptional())
        case 18: self = .replaceInvoice(root: try reader.read(), old: try reader.read(), new: try reader.read())
        default: throw reader.error("unknown operation tag \(tag)")
        }
    }
}
