/// Errors from the transport's API (configuration, credentials, lifecycle). Problems with peers
/// are never thrown: they are refusals and events.
public struct PeerNetworkError: Error, Sendable, CustomStringConvertible {
    public enum Code: String, Sendable, Hashable {
        /// The configuration contradicts itself or genesis.
        case invalidConfiguration
        /// A certificate or key is missing, unreadable, or does not match.
        case invalidCredentials
        /// The listener could not bind.
        case bindFailed
        /// `start()` on a transport that is running or shut down.
        case invalidState
    }
    public var code: Code
    /// What went wrong and what to do about it.
    public var message: String
    public var file: String
    public var line: UInt

    public init(_ code: Code, _ message: String, file: String = #fileID, line: UInt = #line) {
        self.code = code
        self.message = message
        self.file = file
        self.line = line
    }

    public var description: String { "\(code.rawValue): \(message)" }
}
