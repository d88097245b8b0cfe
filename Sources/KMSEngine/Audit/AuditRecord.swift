import Foundation

/// One audited call: who did what to which key, and how it ended. Never holds plaintext, data
/// keys or key material; the encryption context is recorded, as CloudTrail records it.
public struct AuditRecord: Codable, Sendable, Equatable {
    public var time: Date
    public var operation: String
    public var principal: String
    public var account: String
    public var region: String
    public var keyARN: String?
    public var encryptionContext: EncryptionContext?
    public var requestID: String
    /// The AWS error code when the call was refused or failed; nil on success.
    public var errorCode: String?
    /// What the authorization decision point decided and which statement, policy or grant
    /// decided it (one entry per decision: ReEncrypt has two).
    public var decision: String?
    /// The client's User-Agent, when it sent one.
    public var userAgent: String?
    /// Why the call is notable beyond its outcome (for example a key pending deletion was used).
    public var note: String?
}

/// An audit record as stored: its sequence number, its canonical JSON, and the chain MAC.
public struct SealedAuditRecord: Sendable, Equatable {
    public var sequence: Int64
    public var record: [UInt8]
    public var mac: [UInt8]

    public func decoded() throws -> AuditRecord {
        try AuditChain.decoder.decode(AuditRecord.self, from: Data(record))
    }
}
