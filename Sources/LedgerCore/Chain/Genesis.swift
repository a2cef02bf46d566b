/// A validator: a node a member runs, with the key it signs consensus messages with.
public struct Validator: Hashable, Sendable, Codable, CanonicalCodable {
    /// The node's name in configs and logs, e.g. "bank-a-node".
    public var name: String
    /// The member institution that runs it.
    public var member: MemberID
    public var publicKey: PublicKey

    public init(name: String, member: MemberID, publicKey: PublicKey) {
        self.name = name
        self.member = member
        self.publicKey = publicKey
    }
    public func encode(to writer: inout CanonicalWriter) { writer.write(name); writer.write(member); writer.write(publicKey) }
    public init(from reader: inout CanonicalReader) throws {
        name = try reader.readString(); member = try reader.read(); publicKey = try reader.read()
    }
}

/// The validators of a chain in genesis order, with their fault threshold and quorum.
public struct ValidatorSet: Hashable, Sendable {
    public let validators: [Validator]
    public init(_ validators: [Validator]) { self.validators = validators }

    public var count: Int { validators.count }
    /// The number of Byzantine validators tolerated: f = floor((n - 1) / 3).
    public var faultTolerance: Int { (validators.count - 1) / 3 }
    /// Votes needed for a quorum: any two quorums share an honest validator (2f+1 when n = 3f+1).
    public var quorum: Int { (validators.count + faultTolerance) / 2 + 1 }
    public func validator(at index: ValidatorIndex) -> Validator? {
        validators.indices.contains(Int(index.value)) ? validators[Int(index.value)] : nil
    }
    public func index(of publicKey: PublicKey) -> ValidatorIndex? {
        validators.firstIndex { $0.publicKey == publicKey }.map { ValidatorIndex(UInt16($0)) }
    }
    public func index(named name: String) -> ValidatorIndex? {
        validators.firstIndex { $0.name == name }.map { ValidatorIndex(UInt16($0)) }
    }
    /// The primary of a view: validator v mod n.
    public func primary(of view: View) -> ValidatorIndex { ValidatorIndex(UInt16(view.value % UInt64(validators.count))) }
}

/// Consensus and block limits fixed in genesis.
public struct ConsensusParameters: Hashable, Sendable, Codable, CanonicalCodable {
    /// A checkpoint every K blocks.
    public var checkpointInterval: UInt64
    /// Sequence numbers in flight: high watermark = low watermark + window.
    public var watermarkWindow: UInt64
    public var maxBlockTransactions: UInt32
    public var maxBlockBytes: UInt32
    /// Base view-change timeout; doubles per failed attempt up to `maxViewChangeTimeoutMilliseconds`.
    public var viewChangeTimeoutMilliseconds: UInt64
    public var maxViewChangeTimeoutMilliseconds: UInt64
    /// A proposal's timestamp may differ from a validator's clock by at most this much.
    public var maxClockSkewMilliseconds: UInt64

    public init(checkpointInterval: UInt64 = 64, watermarkWindow: UInt64 = 128, maxBlockTransactions: UInt32 = 2_000,
                maxBlockBytes: UInt32 = 4 << 20, viewChangeTimeoutMilliseconds: UInt64 = 2_000,
                maxViewChangeTimeoutMilliseconds: UInt64 = 30_000, maxClockSkewMilliseconds: UInt64 = 5_000) {
        self.checkpointInterval = checkpointInterval
        self.watermarkWindow = watermarkWindow
        self.maxBlockTransactions = maxBlockTransactions
        self.maxBlockBytes = maxBlockBytes
        self.viewChangeTimeoutMilliseconds = viewChangeTimeoutMilliseconds
        self.maxViewChangeTimeoutMilliseconds = maxViewChangeTimeoutMilliseconds
        self.maxClockSkewMilliseconds = maxClockSkewMilliseconds
    }

    public func encode(to writer: inout CanonicalWriter) {
        writer.write(checkpointInterval); writer.write(watermarkWindow); writer.write(maxBlockTransactions)
        writer.write(maxBlockBytes); writer.write(viewChangeTimeoutMilliseconds); writer.write(maxViewChangeTimeoutMilliseconds)
        writer.write(maxClockSkewMilliseconds)
    }
    public init(from reader: inout CanonicalReader) throws {
        checkpointInterval = try reader.readUInt64(); watermarkWindow = try reader.readUInt64()
        maxBlockTransactions = try reader.readUInt32(); maxBlockBytes = try reader.readUInt32()
        viewChangeTimeoutMilliseconds = try reader.readUInt64(); maxViewChangeTimeoutMilliseconds = try reader.readUInt64()
        maxClockSkewMilliseconds = try reader.readUInt64()
    }
}

/// Everything a node needs to start a chain: identity, crypto suite, members, validators, limits.
/// Kept on disk as JSON; its hash is over the canonical encoding, so formatting does not matter.
public struct Genesis: Hashable, Sendable, Codable {
    public var chainID: String
    public var cryptoSuite: CryptoSuiteID
    /// SM2 distinguishing identifier (GB/T 32918); nil means the standard "1234567812345678".
    public var sm2DistinguishingID: String?
    public var genesisTime: ConsensusTime
    /// The consortium's business-day time zone, minutes east of UTC (+480 for China).
    public var utcOffsetMinutes: Int32
    public var members: [Member]
    public var validators: [Validator]
    public var consensus: ConsensusParameters

    public init(chainID: String, cryptoSuite: CryptoSuiteID, sm2DistinguishingID: String? = nil, genesisTime: ConsensusTime,
                utcOffsetMinutes: Int32 = 480, members: [Member], validators: [Validator],
                consensus: ConsensusParameters = ConsensusParameters()) {
        self.chainID = chainID
        self.cryptoSuite = cryptoSuite
        self.sm2DistinguishingID = sm2DistinguishingID
        self.genesisTime = genesisTime
        self.utcOffsetMinutes = utcOffsetMinutes
        self.members = members
        self.validators = validators
        self.consensus = consensus
    }

    public var validatorSet: ValidatorSet { ValidatorSet(validators) }

    public func hash(suite: any CryptoSuite) -> Hash { suite.hash(canonicalBytes) }

    /// Every problem with this genesis, as sentences; empty when it is usable.
    public func problems(suite: any CryptoSuite) -> [String] {
        var problems: [String] = []
        if chainID.isEmpty || chainID.utf8.count > 64 || !chainID.utf8.allSatisfy({ $0 > 32 && $0 < 127 }) {
            problems.append("chainID must be 1-64 printable ASCII characters without spaces")
        }
        if suite.id != cryptoSuite { problems.append("genesis asks for \(cryptoSuite), the suite in use is \(suite.id)") }
        var ids = Set<MemberID>()
        for member in members {
            if !ids.insert(member.id).inserted { problems.append("member \(member.id) is listed twice") }
            if member.publicKey.suite != cryptoSuite || !suite.isValidPublicKey(member.publicKey) {
                problems.append("member \(member.id) has a public key that is not a valid \(cryptoSuite) key")
            }
            if member.roles.isEmpty { problems.append("member \(member.id) has no role") }
        }
        if !members.contains(where: { $0.roles.contains(.operator_) }) {
            problems.append("no member has the operator role, so no one could admit or suspend members")
        }
        if validators.isEmpty { problems.append("there must be at least one validator (four to tolerate one fault)") }
        var names = Set<String>(), keys = Set<PublicKey>()
        for validator in validators {
            if !names.insert(validator.name).inserted { problems.append("validator name \(validator.name) is used twice") }
            if !keys.insert(validator.publicKey).inserted { problems.append("validator \(validator.name) shares its key with another") }
            if !ids.contains(validator.member) { problems.append("validator \(validator.name) belongs to \(validator.member), which is not a member") }
            if validator.publicKey.suite != cryptoSuite || !suite.isValidPublicKey(validator.publicKey) {
                problems.append("validator \(validator.name) has a key that is not a valid \(cryptoSuite) key")
            }
        }
        if consensus.checkpointInterval == 0 || consensus.watermarkWindow < consensus.checkpointInterval {
            problems.append("consensus.watermarkWindow must be at least checkpointInterval, which must be positive")
        }
        if consensus.maxBlockTransactions == 0 { problems.append("consensus.maxBlockTransactions must be positive") }
        if !(-720...840).contains(utcOffsetMinutes) { problems.append("utcOffsetMinutes must be between -720 and +840") }
        return problems
    }
}

extension Genesis: CanonicalCodable {
    public func encode(to writer: inout CanonicalWriter) {
        writer.write(UInt8(1))
        writer.write(chainID); writer.write(cryptoSuite.code); writer.write(sm2DistinguishingID)
        writer.write(genesisTime); writer.write(utcOffsetMinutes); writer.write(members); writer.write(validators)
        writer.write(consensus)
    }
    public init(from reader: inout CanonicalReader) throws {
        guard try reader.readUInt8() == 1 else { throw reader.error("unsupported genesis version") }
        chainID = try reader.readString()
        let code = try reader.readUInt8()
        guard let suite = CryptoSuiteID(code: code) else { throw reader.error("unknown crypto suite \(code)") }
        cryptoSuite = suite
        sm2DistinguishingID = try reader.readOptional(); genesisTime = try reader.read()
        utcOffsetMinutes = try reader.readInt32(); members = try reader.readArray(); validators = try reader.readArray()
        consensus = try reader.read()
    }
}
