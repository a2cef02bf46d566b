/// Why the store refused or failed an operation: a stable code and a sentence that says what to do.
public struct StoreError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// The data file could not be opened or created.
        case cannotOpen
        /// The file belongs to another chain (its genesis differs from the one given).
        case genesisMismatch
        /// The crypto suite given is not the one the genesis asks for.
        case suiteMismatch
        /// The file was written by a newer version of this software (it has migrations this one does not know).
        case newerSchema
        /// The file is not a ledger, or its ledger tables disagree with each other.
        case corrupt
        /// The block does not extend the tip: wrong height.
        case wrongHeight
        /// The block does not extend the tip: its previous hash is not the tip's hash.
        case wrongPreviousHash
        /// The execution result or certificate handed to `append` does not belong to the block.
        case resultMismatch
        /// Another connection holds the write lock.
        case busy
        /// The disk failed or is full.
        case io
        /// The file or its folder is read-only.
        case readOnly
        /// The store was closed.
        case closed
        /// Any other SQLite failure.
        case sqlite
        /// The verifier's scratch file (its working copy of the recomputed state, DECISIONS 48)
        /// could not be made, written or read: a fault of the run (a full disk), not of the ledger.
        case scratchFile
    }

    public var code: Code
    public var message: String
    public var file: String
    public var line: Int

    public init(_ code: Code, _ message: String, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(code.rawValue): \(message)" }

    public static func == (lhs: StoreError, rhs: StoreError) -> Bool { lhs.code == rhs.code && lhs.message == rhs.message }
}
