/// Evidence for an eligibility answer that a bank can check offline against the genesis file
/// alone: the root's creation and the debtor's confirmation, the chain of title from the root to
/// the fragment (every transfer and split with its signer), and for each of those transactions
/// its block header, the block's commit certificate, a Merkle proof of the transaction to the
/// header's `transactionsRoot` and a Merkle proof of its receipt to `resultsRoot` (so it was
/// committed, not refused).
///
/// What it proves: the receivable exists with these terms, the debtor confirmed it with its own
/// key, and the holder acquired the fragment through this chain of signed transfers, all in
/// blocks a quorum of genesis validators certified. What it cannot prove (the state digest is a
/// chained commitment, not a Merkle tree of state; see docs/DECISIONS.md §6): that nothing
/// happened to the fragment after its last transfer (a later financing, freeze or settlement).
/// Those are the answer's state rules, computed by the node as of `asOf`; a bank that trusts no
/// node re-executes the chain with `scf ledger verify`.
public struct ProvenTransaction: Hashable, Sendable, CanonicalEncodable {
    public var header: BlockHeader
    public var certificate: CommitCertificate
    public var transaction: SignedTransaction
    public var receipt: Receipt
    public var transactionProof: MerkleProof
    public var receiptProof: MerkleProof

    public init(header: BlockHeader, certificate: CommitCertificate, transaction: SignedTransaction, receipt: Receipt,
                transactionProof: MerkleProof, receiptProof: MerkleProof) {
        self.header = header; self.certificate = certificate; self.transaction = transaction; self.receipt = receipt
        self.transactionProof = transactionProof; self.receiptProof = receiptProof
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(header); writer.write(certificate); transaction.encode(to: &writer); writer.write(receipt)
        writer.write(transactionProof); writer.write(receiptProof)
    }
    public init(from reader: inout CanonicalReader, suite: any CryptoSuite) throws {
        header = try reader.read(); certificate = try reader.read()
        transaction = try SignedTransaction(from: &reader, suite: suite)
        receipt = try reader.read(); transactionProof = try reader.read(); receiptProof = try reader.read()
    }
}

/// One step of the chain of title: a transfer and which child of the moved fragment continues the chain
/// (0 = the transferred part, 1 = the remainder the signer kept).
public struct TitleStep: Hashable, Sendable, CanonicalEncodable {
    public var transfer: ProvenTransaction
    public var childIndex: UInt8
    public init(transfer: ProvenTransaction, childIndex: UInt8) {
        self.transfer = transfer
        self.childIndex = childIndex
    }
    public func encode(to writer: inout CanonicalWriter) { writer.write(transfer); writer.write(childIndex) }
}

public struct EligibilityEvidence: Hashable, Sendable, CanonicalEncodable {
    public static let currentVersion: UInt8 = 1
    public var version: UInt8
    public var chainID: String
    /// The genesis this evidence is for; the verifier refuses any other.
    public var genesisHash: Hash
    public var fragment: FragmentID
    public var root: ReceivableID
    /// The block the answer was computed at, with its certificate.
    public var asOfHeader: BlockHeader
    public var asOfCertificate: CommitCertificate
    /// `registerMember` transactions of signers that are not in genesis, in chain order.
    public var registrations: [ProvenTransaction]
    /// The propose (by the creditor) or issue (by the debtor) transaction; its id is the root id.
    public var creation: ProvenTransaction
    /// The debtor's confirm of a proposal, or the creditor's accept of an issue: creates the first fragment.
    public var activation: ProvenTransaction
    /// Root → … → fragment.
    public var title: [TitleStep]

    public init(chainID: String, genesisHash: Hash, fragment: FragmentID, root: ReceivableID, asOfHeader: BlockHeader,
                asOfCertificate: CommitCertificate, registrations: [ProvenTransaction], creation: ProvenTransaction,
                activation: ProvenTransaction, title: [TitleStep]) {
        self.version = Self.currentVersion
        self.chainID = chainID; self.genesisHash = genesisHash; self.fragment = fragment; self.root = root
        self.asOfHeader = asOfHeader; self.asOfCertificate = asOfCertificate; self.registrations = registrations
        self.creation = creation; self.activation = activation; self.title = title
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(version)
        writer.write(chainID); writer.write(genesisHash); writer.write(fragment); writer.write(root)
        writer.write(asOfHeader); writer.write(asOfCertificate)
        writer.write(registrations); writer.write(creation); writer.write(activation); writer.write(title)
    }

    public init(canonicalBytes: [UInt8], suite: any CryptoSuite) throws {
        var reader = CanonicalReader(canonicalBytes)
        version = try reader.readUInt8()
        guard version == Self.currentVersion else { throw reader.error("unsupported evidence version \(version)") }
        chainID = try reader.readString(); genesisHash = try reader.read(); fragment = try reader.read(); root = try reader.read()
        asOfHeader = try reader.read(); asOfCertificate = try reader.read()
        let count = try reader.readCount()
        registrations = try (0..<count).map { _ in try ProvenTransaction(from: &reader, suite: suite) }
        creation = try ProvenTransaction(from: &reader, suite: suite)
        activation = try ProvenTransaction(from: &reader, suite: suite)
        let steps = try reader.readCount()
        title = try (0..<steps).map { _ in
            let transfer = try ProvenTransaction(from: &reader, suite: suite)
            return TitleStep(transfer: transfer, childIndex: try reader.readUInt8())
        }
        try reader.expectEnd()
    }
}

/// Why evidence does not verify: a stable code and a precise sentence.
public struct EvidenceError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case malformed, wrongGenesis, wrongChain, certificateMismatch, certificateInvalid, transactionNotInBlock
        case receiptNotInBlock, transactionRefused, unknownSigner, badSignature, notDebtorConfirmation, rootMismatch
        case titleBroken, fragmentMismatch, afterAsOf, notFound
    }
    public var code: Code
    public var message: String
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}

// MARK: Building

public enum EvidenceBuilder {
    /// Gathers the evidence for `fragment` from the chain history, as of the block `asOf`.
    public static func build<S: LedgerStateReader, H: ChainHistory>(fragment id: FragmentID, asOf: Height, genesis: Genesis,
                                                                     suite: any CryptoSuite, state: S, history: H) throws -> EligibilityEvidence {
        guard let fragment = try state.fragment(id), let root = try state.root(fragment.root) else {
            throw EvidenceError(.notFound, "no fragment \(id.hash.short)… on the ledger; there is nothing to prove")
        }
        guard let asOfBlock = try history.committedBlock(at: asOf) else {
            throw EvidenceError(.notFound, "no block \(asOf) in this ledger; evidence needs a committed block to be as of")
        }
        var cache: [Height: (CommittedBlock, [Receipt])] = [:]
        func prove(_ txID: Hash) throws -> ProvenTransaction {
            guard let located = try history.locate(txID) else {
                throw EvidenceError(.notFound, "transaction \(txID.short)… is not in this ledger")
            }
            let entry: (CommittedBlock, [Receipt])
            if let cached = cache[located.height] {
                entry = cached
            } else {
                guard let block = try history.committedBlock(at: located.height) else {
                    throw EvidenceError(.notFound, "block \(located.height) is missing from this ledger")
                }
                entry = (block, try history.receipts(at: located.height))
                cache[located.height] = entry
            }
            let (block, receipts) = entry
            let leaves = block.block.transactions.map { $0.merkleLeaf(suite: suite) }
            let receiptLeaves = receipts.map { $0.merkleLeaf(suite: suite) }
            guard let transactionProof = MerkleTree.proof(leaves: leaves, index: located.position, suite: suite),
                  let receiptProof = MerkleTree.proof(leaves: receiptLeaves, index: located.position, suite: suite) else {
                throw EvidenceError(.notFound, "block \(located.height) does not hold transaction \(txID.short)… at position \(located.position)")
            }
            return ProvenTransaction(header: block.block.header, certificate: block.certificate, transaction: located.transaction,
                                     receipt: located.receipt, transactionProof: transactionProof, receiptProof: receiptProof)
        }

        // Lineage, root first.
        var lineage: [Fragment] = [fragment]
        while let parentID = lineage.last!.parent {
            guard let parent = try state.fragment(parentID) else {
                throw EvidenceError(.notFound, "parent fragment \(parentID.hash.short)… is missing from the ledger")
            }
            lineage.append(parent)
        }
        lineage.reverse()
        let creation = try prove(root.id.hash)
        let activation = try prove(lineage[0].createdBy)
        var title: [TitleStep] = []
        for offset in 1..<max(lineage.count, 1) where offset < lineage.count {
            let child = lineage[offset], parent = lineage[offset - 1]
            let index: UInt8 = child.id == FragmentID.child(of: parent.id, index: 0, suite: suite) ? 0 : 1
            title.append(TitleStep(transfer: try prove(child.createdBy), childIndex: index))
        }
        // Registrations of every signer that genesis does not know, and of whoever registered them.
        let genesisMembers = Set(genesis.members.map(\.id))
        var registrations: [ProvenTransaction] = []
        var pending = [creation, activation] + title.map(\.transfer)
        var seen = Set<MemberID>()
        while let next = pending.popLast() {
            let signer = next.transaction.body.signer
            guard !genesisMembers.contains(signer), seen.insert(signer).inserted else { continue }
            guard let registration = try history.registration(of: signer) else {
                throw EvidenceError(.notFound, "\(signer) is not in genesis and its registration is not in this ledger")
            }
            let proven = try prove(registration)
            registrations.append(proven)
            pending.append(proven)
        }
        registrations.sort { ($0.header.height, $0.transactionProof.leafIndex) < ($1.header.height, $1.transactionProof.leafIndex) }
        return EligibilityEvidence(chainID: genesis.chainID, genesisHash: genesis.hash(suite: suite), fragment: id, root: root.id,
                                   asOfHeader: asOfBlock.block.header, asOfCertificate: asOfBlock.certificate,
                                   registrations: registrations, creation: creation, activation: activation, title: title)
    }
}

// MARK: Verifying

/// What verified evidence establishes.
public struct VerifiedTitle: Hashable, Sendable {
    public var root: ReceivableID
    public var terms: ReceivableTerms
    /// The debtor's own transaction that made the receivable binding (confirm or issue).
    public var confirmation: Hash
    public var fragment: FragmentID
    /// Who received the fragment by the last link, and its amount.
    public var holder: MemberID
    public var amount: MinorUnits
    public var links: [TitleLink]
    public var asOfHeight: Height
    public var asOfHash: Hash
}

/// Checks evidence offline against a genesis: nothing else is trusted.
public struct EvidenceVerifier: Sendable {
    public let genesis: Genesis
    public let suite: any CryptoSuite

    public init(genesis: Genesis, suite: any CryptoSuite) {
        self.genesis = genesis
        self.suite = suite
    }

    public func verify(_ evidence: EligibilityEvidence) throws(EvidenceError) -> VerifiedTitle {
        let genesisHash = genesis.hash(suite: suite)
        guard evidence.genesisHash == genesisHash else {
            throw EvidenceError(.wrongGenesis, "the evidence is for genesis \(evidence.genesisHash.short)…, yours is \(genesisHash.short)…; it is from another consortium or your genesis file is wrong")
        }
        guard evidence.chainID == genesis.chainID else {
            throw EvidenceError(.wrongChain, "the evidence is for chain \(evidence.chainID), genesis is \(genesis.chainID)")
        }
        var certified = Set<Hash>()
        let asOfHash = try checkBlock(evidence.asOfHeader, evidence.asOfCertificate, what: "the as-of block", certified: &certified)
        let asOf = evidence.asOfHeader.height

        var keys: [MemberID: PublicKey] = [:]
        var operators = Set<MemberID>()
        for member in genesis.members {
            keys[member.id] = member.publicKey
            if member.roles.contains(.operator_) { operators.insert(member.id) }
        }
        func check(_ proven: ProvenTransaction, _ what: String) throws(EvidenceError) {
            let header = proven.header
            _ = try checkBlock(header, proven.certificate, what: "the block of \(what)", certified: &certified)
            guard header.height <= asOf else {
                throw EvidenceError(.afterAsOf, "\(what) is in block \(header.height), after the as-of block \(asOf)")
            }
            let transaction = proven.transaction
            guard proven.transactionProof.leafCount == header.transactionCount,
                  proven.transactionProof.verifies(leaf: transaction.merkleLeaf(suite: suite), root: header.transactionsRoot, suite: suite) else {
                throw EvidenceError(.transactionNotInBlock, "\(what) (tx \(transaction.id.short)…) is not in block \(header.height): its Merkle proof does not lead to the block's transactionsRoot")
            }
            guard proven.receipt.transaction == transaction.id else {
                throw EvidenceError(.receiptNotInBlock, "the receipt given for \(what) is for another transaction")
            }
            guard proven.receipt.isCommitted else {
                throw EvidenceError(.transactionRefused, "\(what) (tx \(transaction.id.short)…) was refused by the ledger (\(proven.receipt.rejection!.code.rawValue)); it changed nothing")
            }
            guard proven.receiptProof.leafIndex == proven.transactionProof.leafIndex, proven.receiptProof.leafCount == header.transactionCount,
                  proven.receiptProof.verifies(leaf: proven.receipt.merkleLeaf(suite: suite), root: header.resultsRoot, suite: suite) else {
                throw EvidenceError(.receiptNotInBlock, "the committed receipt of \(what) (tx \(transaction.id.short)…) is not in block \(header.height): its Merkle proof does not lead to the block's resultsRoot")
            }
            guard transaction.body.chainID == genesis.chainID else {
                throw EvidenceError(.wrongChain, "\(what) is for chain \(transaction.body.chainID)")
            }
            let signer = transaction.body.signer
            guard let key = keys[signer] else {
                throw EvidenceError(.unknownSigner, "\(what) is signed by \(signer), who is neither in genesis nor registered by a transaction in the evidence")
            }
            guard transaction.hasValidSignature(publicKey: key, suite: suite) else {
                throw EvidenceError(.badSignature, "the signature of \(signer) on \(what) (tx \(transaction.id.short)…) does not verify")
            }
        }

        for (offset, registration) in evidence.registrations.enumerated() {
            try check(registration, "registration \(offset + 1)")
            guard case .registerMember(let member) = registration.transaction.body.operation,
                  operators.contains(registration.transaction.body.signer) else {
                throw EvidenceError(.unknownSigner, "registration \(offset + 1) is not a registerMember transaction signed by an operator")
            }
            if keys[member.id] == nil { keys[member.id] = member.publicKey }
            if member.roles.contains(.operator_) { operators.insert(member.id) }
        }

        try check(evidence.creation, "the receivable's creation")
        let creationBody = evidence.creation.transaction.body
        guard ReceivableID(evidence.creation.transaction.id) == evidence.root else {
            throw EvidenceError(.rootMismatch, "the creation transaction \(evidence.creation.transaction.id.short)… is not receivable \(evidence.root.hash.short)…")
        }
        let terms: ReceivableTerms
        let confirmation: Hash
        try check(evidence.activation, "the receivable's activation")
        let activationBody = evidence.activation.transaction.body
        switch creationBody.operation {
        case .proposeReceivable(let proposed):
            terms = proposed
            guard creationBody.signer == proposed.creditor else {
                throw EvidenceError(.rootMismatch, "the proposal is signed by \(creationBody.signer), not the creditor \(proposed.creditor)")
            }
            guard case .confirmReceivable(let id) = activationBody.operation, id == evidence.root else {
                throw EvidenceError(.notDebtorConfirmation, "a proposed receivable needs the debtor's confirm transaction; the evidence has a \(activationBody.operation.kind)")
            }
            guard activationBody.signer == proposed.debtor else {
                throw EvidenceError(.notDebtorConfirmation, "the confirmation is signed by \(activationBody.signer), not by the debtor \(proposed.debtor)")
            }
            confirmation = evidence.activation.transaction.id
        case .issueReceivable(let issued):
            terms = issued
            guard creationBody.signer == issued.debtor else {
                throw EvidenceError(.notDebtorConfirmation, "the issue is signed by \(creationBody.signer), not by the debtor \(issued.debtor)")
            }
            guard case .acceptReceivable(let id) = activationBody.operation, id == evidence.root, activationBody.signer == issued.creditor else {
                throw EvidenceError(.rootMismatch, "an issued receivable needs the creditor's accept transaction")
            }
            confirmation = evidence.creation.transaction.id
        default:
            throw EvidenceError(.rootMismatch, "the creation transaction is a \(creationBody.operation.kind), not a propose or issue")
        }
        guard (evidence.creation.header.height, evidence.creation.transactionProof.leafIndex)
                < (evidence.activation.header.height, evidence.activation.transactionProof.leafIndex) else {
            throw EvidenceError(.rootMismatch, "the activation comes before the receivable was created")
        }

        var fragment = FragmentID.initial(of: evidence.root, suite: suite)
        var holder = terms.creditor
        var amount = terms.face.amount
        var links = [TitleLink(fragment: fragment, transaction: evidence.activation.transaction.id, kind: activationBody.operation.kind,
                               signer: activationBody.signer, holder: holder, amount: amount, height: evidence.activation.header.height)]
        var position = (evidence.activation.header.height, evidence.activation.transactionProof.leafIndex)
        for (offset, step) in evidence.title.enumerated() {
            let what = "transfer \(offset + 1) of the chain of title"
            try check(step.transfer, what)
            let body = step.transfer.transaction.body
            guard case .transfer(let moved, let to, let moved_amount) = body.operation else {
                throw EvidenceError(.titleBroken, "\(what) is a \(body.operation.kind), not a transfer")
            }
            guard moved == fragment else {
                throw EvidenceError(.titleBroken, "\(what) moves fragment \(moved.hash.short)…, but the chain so far reached \(fragment.hash.short)…; a transfer is missing or out of order")
            }
            guard body.signer == holder else {
                throw EvidenceError(.titleBroken, "\(what) is signed by \(body.signer), but \(holder) held fragment \(fragment.hash.short)…")
            }
            let next = (step.transfer.header.height, step.transfer.transactionProof.leafIndex)
            guard position < next else {
                throw EvidenceError(.titleBroken, "\(what) comes before the link it continues")
            }
            guard moved_amount.value > 0, moved_amount <= amount else {
                throw EvidenceError(.titleBroken, "\(what) moves \(moved_amount), more than the \(amount) the fragment holds")
            }
            switch step.childIndex {
            case 0:
                holder = to
                amount = moved_amount
            case 1:
                guard moved_amount < amount else {
                    throw EvidenceError(.titleBroken, "\(what) moved the whole fragment, so it has no remainder (child 1)")
                }
                amount = MinorUnits(amount.value - moved_amount.value)
            default:
                throw EvidenceError(.titleBroken, "\(what) names child \(step.childIndex); a transfer has children 0 and 1 only")
            }
            fragment = FragmentID.child(of: fragment, index: step.childIndex, suite: suite)
            position = next
            links.append(TitleLink(fragment: fragment, transaction: step.transfer.transaction.id, kind: body.operation.kind,
                                   signer: body.signer, holder: holder, amount: amount, height: step.transfer.header.height))
        }
        guard fragment == evidence.fragment else {
            throw EvidenceError(.fragmentMismatch, "the chain of title ends at fragment \(fragment.hash.short)…, not at \(evidence.fragment.hash.short)…, the fragment the evidence is about; a transfer is missing")
        }
        return VerifiedTitle(root: evidence.root, terms: terms, confirmation: confirmation, fragment: fragment, holder: holder,
                             amount: amount, links: links, asOfHeight: asOf, asOfHash: asOfHash)
    }

    /// Checks that the certificate is a quorum of genesis validators over this header. Returns the block hash.
    private func checkBlock(_ header: BlockHeader, _ certificate: CommitCertificate, what: String,
                            certified: inout Set<Hash>) throws(EvidenceError) -> Hash {
        guard header.chainID == genesis.chainID else {
            throw EvidenceError(.wrongChain, "\(what) is for chain \(header.chainID), genesis is \(genesis.chainID)")
        }
        let hash = header.hash(suite: suite)
        if certified.contains(hash) { return hash }
        guard certificate.blockHash == hash, certificate.height == header.height else {
            throw EvidenceError(.certificateMismatch, "the certificate of \(what) is for block \(certificate.height) \(certificate.blockHash.short)…, not block \(header.height) \(hash.short)…")
        }
        do {
            try certificate.verify(validators: genesis.validatorSet, chainID: genesis.chainID, suite: suite)
        } catch {
            throw EvidenceError(.certificateInvalid, "the certificate of \(what) (block \(header.height)) does not verify against the genesis validators: \(error.message)")
        }
        certified.insert(hash)
        return hash
    }
}
