import Foundation
import KMSFSCrypto
import Synchronization

/// The MAC chain over audit records.
///
/// `mac(n) = HMAC-SHA-256(K, mac(n−1) ‖ u64 n ‖ record(n))`, with `mac(0)` = 32 zero bytes and
/// `K = HKDF-SHA-256(root key, info "kmsd audit chain 1")`. Editing, inserting, reordering or
/// deleting a record breaks every later MAC, and recomputing them needs the root key. Cutting
/// records off the end leaves a valid shorter chain: the store's `audit_head` names the last
/// sequence number to tell a cut from a quiet period (see docs/KMS.md for what that covers).
final class AuditChain: Sendable {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    /// Keyed once; used under the audit writer's lock or by one verifier at a time.
    private let hmac: Mutex<HMACContext>

    init(rootKey: RootKey) throws {
        let key = try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsd audit chain 1".utf8), outputByteCount: 32)
        hmac = Mutex(try HMACContext(key: key))
    }

    func mac(previous: [UInt8], sequence: Int64, record: [UInt8]) -> [UInt8] {
        hmac.withLock { $0.mac(previous, Self.bigEndian(sequence), record) }
    }

    private static func bigEndian(_ value: Int64) -> [UInt8] {
        withUnsafeBytes(of: UInt64(value).bigEndian) { Array($0) }
    }

    static let genesis = [UInt8](repeating: 0, count: 32)

    /// The stored head: `u64 sequence ‖ mac(sequence) ‖ HMAC(K, "head" ‖ both)`.
    func head(sequence: Int64, mac: [UInt8]) -> [UInt8] {
        let body = Self.bigEndian(sequence) + mac
        return body + hmac.withLock { $0.mac(Array("head".utf8), body) }
    }

    /// Walks `records` (the stored trail, in order) from the first and reports the first break;
    /// `head`, the stored `audit_head`, names the last record written, so a cut at the end shows
    /// too.
    func verify(_ records: [SealedAuditRecord], head: [UInt8]?) -> AuditVerification {
        var previous = Self.genesis
        var expected: Int64 = 1
        for record in records {
            guard record.sequence == expected else {
                return AuditVerification(verifiedCount: expected - 1, problem: "record \(expected) is missing (found \(record.sequence) next)")
            }
            guard mac(previous: previous, sequence: record.sequence, record: record.record) == record.mac else {
                return AuditVerification(verifiedCount: expected - 1, problem: "record \(expected) was altered (MAC mismatch)")
            }
            previous = record.mac
            expected += 1
        }
        let verified = expected - 1
        if let head {
            guard let (sequence, mac) = parseHead(head) else {
                return AuditVerification(verifiedCount: verified, problem: "the audit head was altered")
            }
            guard sequence == verified, mac == previous else {
                return AuditVerification(verifiedCount: verified, problem: "records \(verified + 1) to \(sequence) are missing from the end")
            }
        } else if verified > 0 {
            return AuditVerification(verifiedCount: verified, problem: "the audit head is missing")
        }
        return AuditVerification(verifiedCount: verified, problem: nil)
    }

    /// The sequence number and MAC a head names, if the head's own MAC verifies.
    func parseHead(_ head: [UInt8]) -> (Int64, [UInt8])? {
        guard head.count == 8 + 32 + 32 else { return nil }
        let body = Array(head[0..<40])
        guard hmac.withLock({ $0.mac(Array("head".utf8), body) }) == Array(head[40...]) else { return nil }
        let sequence = body[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        return (Int64(sequence), Array(body[8..<40]))
    }
}

/// What ``KMSEngine/verifyAudit()`` found.
public struct AuditVerification: Sendable, Equatable {
    /// Records that verified, from the first.
    public var verifiedCount: Int64
    /// The first problem, or nil if the whole chain verified.
    public var problem: String?
    public var isIntact: Bool { problem == nil }
}
