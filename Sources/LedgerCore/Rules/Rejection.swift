/// Stable reason codes for refused transactions. The raw values are part of the API and of the
/// receipts committed in blocks: never rename one; add new ones at the end.
public enum RejectionCode: String, Sendable, Codable, CaseIterable {
    // Envelope
    case wrongChain, unsupportedVersion, badSignature, replayed, nonceGap, duplicateInBlock
    // Parties
    case unknownMember, signerNotActive, notAuthorized, counterpartyNotActive, duplicateMember, invalidMember
    case notDebtor, notCreditor, notHolder, notBank, notInitiator, notCounterparty
    // Receivables
    case unknownReceivable, unknownFragment, unknownRequest, invalidState, invalidTerms, invalidAmount
    case currencyMismatch, amountExceedsOutstanding, overflow
    case alreadyFinanced, fragmentLocked, fragmentFrozen, fragmentClosed, notFrozen
    case matured, notMatured, transferToDebtor, transferToSelf, nothingOutstanding
    // Invoices
    case invoiceAlreadyBound, invoiceInvalid, unknownInvoice, invoiceNotOnReceivable, invoiceStillValid
}

/// Why a transaction was refused: a stable code and a sentence the user can act on.
public struct Rejection: Error, Hashable, Sendable, Codable, CustomStringConvertible {
    public var code: RejectionCode
    public var message: String
    public init(_ code: RejectionCode, _ message: String) {
        self.code = code
        self.message = message
    }
    public var description: String { "\(code.rawValue): \(message)" }
}
