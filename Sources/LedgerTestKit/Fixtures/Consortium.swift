import LedgerCore

/// A deterministic sample consortium for tests, the simulator and benchmarks: every key comes
/// from a seed derived from a name, so runs are reproducible and no secret is ever stored.
public struct TestConsortium: Sendable {
    public let suite: any CryptoSuite
    public let genesis: Genesis
    public let memberKeys: [MemberID: any SigningKey]
    public let validatorKeys: [any SigningKey]

    public static let operatorID: MemberID = "operator"
    public static let core: MemberID = "core-enterprise"
    public static let bankA: MemberID = "bank-a"
    public static let bankB: MemberID = "bank-b"
    public static let tier1: MemberID = "tier1-supplier"
    public static let tier2: MemberID = "tier2-supplier"
    public static let tier3: MemberID = "tier3-supplier"
    public static let regulator: MemberID = "regulator"
    public static let verifier: MemberID = "invoice-verifier"

    /// 2026-01-05 00:00 China time: a Monday early in the year, before every sample maturity.
    public static let genesisTime = ConsensusTime(startOf: BusinessDate("2026-01-05")!, utcOffsetMinutes: 480)

    /// - Parameters:
    ///   - validators: how many validator nodes (the first four are run by the core enterprise, the
    ///     two banks and the tier-1 supplier, as in DESIGN.md; more are run by the operator).
    ///   - extraSuppliers: additional supplier members `supplier-0…`, for load and property tests.
    public init(suite: any CryptoSuite = Ed25519SHA256Suite(), validators: Int = 4, extraSuppliers: Int = 0,
                chainID: String = "scf-test", consensus: ConsensusParameters = ConsensusParameters()) {
        self.suite = suite
        var members: [Member] = []
        var keys: [MemberID: any SigningKey] = [:]
        func add(_ id: MemberID, _ name: String, _ roles: Roles) {
            let key = TestConsortium.key(for: "member/\(id)", suite: suite)
            keys[id] = key
            members.append(Member(id: id, legalName: name, creditCode: TestConsortium.creditCode(for: id.rawValue),
                                  roles: roles, publicKey: key.publicKey))
        }
        add(Self.operatorID, "SCF Consortium Operations Ltd", [.operator_])
        add(Self.core, "Huaxia Heavy Industries Co., Ltd", [.coreEnterprise])
        add(Self.bankA, "First Commercial Bank", [.bank, .invoiceVerifier])
        add(Self.bankB, "Second Merchants Bank", [.bank])
        add(Self.tier1, "Tier-1 Components Co., Ltd", [.supplier])
        add(Self.tier2, "Tier-2 Castings Co., Ltd", [.supplier])
        add(Self.tier3, "Tier-3 Fasteners Workshop", [.supplier])
        add(Self.regulator, "Financial Regulator Observer", [.regulator])
        add(Self.verifier, "Invoice Verification Service", [.invoiceVerifier])
        for index in 0..<extraSuppliers {
            add(MemberID("supplier-\(index)")!, "Supplier \(index) Ltd", [.supplier])
        }
        let owners: [MemberID] = [Self.core, Self.bankA, Self.bankB, Self.tier1]
        var validatorList: [Validator] = []
        var validatorKeys: [any SigningKey] = []
        for index in 0..<validators {
            let owner = index < owners.count ? owners[index] : Self.operatorID
            let key = TestConsortium.key(for: "validator/\(index)", suite: suite)
            validatorKeys.append(key)
            validatorList.append(Validator(name: "node-\(index)", member: owner, publicKey: key.publicKey))
        }
        self.memberKeys = keys
        self.validatorKeys = validatorKeys
        self.genesis = Genesis(chainID: chainID, cryptoSuite: suite.id, genesisTime: Self.genesisTime, members: members,
                               validators: validatorList, consensus: consensus)
    }

    public var executor: BlockExecutor { BlockExecutor(genesis: genesis, suite: suite) }
    public var validatorSet: ValidatorSet { genesis.validatorSet }

    public func key(_ member: MemberID) -> any SigningKey {
        guard let key = memberKeys[member] else { preconditionFailure("no key for \(member) in the test consortium") }
        return key
    }

    public func member(_ id: MemberID) -> Member { genesis.members.first { $0.id == id }! }

    /// A member's credit code, or a valid made-up one for an id that is not a member.
    public func creditCode(of id: MemberID) -> UnifiedSocialCreditCode {
        genesis.members.first { $0.id == id }?.creditCode ?? TestConsortium.creditCode(for: id.rawValue)
    }

    /// A key derived from a name: seed = H("seed/" + name).
    public static func key(for name: String, suite: any CryptoSuite) -> any SigningKey {
        let seed = Ed25519SHA256Suite().hash(Array("scf-test-seed/\(name)".utf8)).bytes
        return try! suite.signingKey(try! suite.privateKey(seed: seed))
    }

    /// A valid unified social credit code derived from a name (check character computed).
    public static func creditCode(for name: String) -> UnifiedSocialCreditCode {
        let digits = Ed25519SHA256Suite().hash(Array(name.utf8)).bytes.prefix(9).map { String($0 % 10) }.joined()
        let body = Array(("91310000" + digits).utf8)
        let check = UnifiedSocialCreditCode.checkCharacter(for: body[0..<17])!
        return UnifiedSocialCreditCode(String(decoding: body + [check], as: UTF8.self))!
    }

    /// An invoice from `seller` to `buyer` with a derived number.
    public func invoice(_ number: String, seller: MemberID, buyer: MemberID, includingTax: Money,
                        issued: BusinessDate = BusinessDate("2026-01-02")!, type: InvoiceType = .vatSpecial) -> Invoice {
        let value = includingTax.amount.value
        let excluding = value > Int64.max / 100 ? value / 113 * 100 : max(1, value * 100 / 113)
        return Invoice(key: InvoiceKey(code: "3100261130", number: number)!, type: type, issueDate: issued,
                       sellerTaxID: creditCode(of: seller), buyerTaxID: creditCode(of: buyer),
                       amountExcludingTax: Money(minor: excluding, includingTax.currency), amountIncludingTax: includingTax,
                       documentHash: suite.hash(Array("invoice-pdf/\(number)".utf8)))
    }

    /// Terms of a receivable backed by one invoice covering the face amount.
    public func terms(debtor: MemberID = TestConsortium.core, creditor: MemberID = TestConsortium.tier1, face: Int64,
                      currency: CurrencyCode = .cny, invoiceNumber: String, issue: String = "2026-01-02",
                      maturity: String = "2026-07-01") -> ReceivableTerms {
        let money = Money(minor: face, currency)
        return ReceivableTerms(debtor: debtor, creditor: creditor, face: money, issueDate: BusinessDate(issue)!,
                               maturity: BusinessDate(maturity)!,
                               invoices: [invoice(invoiceNumber, seller: creditor, buyer: debtor, includingTax: money)],
                               documentHashes: [suite.hash(Array("contract/\(invoiceNumber)".utf8))])
    }
}

/// Signs transactions for the test consortium's members, keeping each signer's nonce.
public struct TransactionFactory: Sendable {
    public let consortium: TestConsortium
    public private(set) var nonces: [MemberID: UInt64] = [:]

    public init(consortium: TestConsortium) { self.consortium = consortium }

    /// Signs `operation` as `signer` with its next nonce (or an explicit one).
    public mutating func make(_ signer: MemberID, _ operation: LedgerOperation, nonce: UInt64? = nil,
                              chainID: String? = nil) -> SignedTransaction {
        let next = nonce ?? (nonces[signer, default: 0] + 1)
        if nonce == nil { nonces[signer] = next }
        let body = TransactionBody(chainID: chainID ?? consortium.genesis.chainID, signer: signer, nonce: next, operation: operation)
        return try! SignedTransaction.sign(body, with: consortium.key(signer), suite: consortium.suite)
    }

    /// Signs with an arbitrary key (for forged-signature tests), without touching nonces.
    public func forge(_ signer: MemberID, _ operation: LedgerOperation, nonce: UInt64, key: any SigningKey) -> SignedTransaction {
        let body = TransactionBody(chainID: consortium.genesis.chainID, signer: signer, nonce: nonce, operation: operation)
        return try! SignedTransaction.sign(body, with: key, suite: consortium.suite)
    }

    public mutating func resetNonce(_ signer: MemberID, to value: UInt64) { nonces[signer] = value }
}
