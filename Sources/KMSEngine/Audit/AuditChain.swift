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
///
/// A rotation of the root key starts a new segment: records from its first sequence number on
/// are MAC'ed under the new root key's K, and the earlier segments' keys are kept, sealed under
/// the new root key (``ChainHistory``), to verify the records before. Whoever holds an old root
/// key can recompute an old segment, but not the first MAC of the segment after it, which
/// chains on from the old segment's last MAC under a key they do not have.
final class AuditChain: Sendable {
    static let decoder: JSONDecoder = {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        return decoder
    }()

    /// One key per segment, by its first sequence number, in order; the last is the current one.
    /// Keyed once; used under the audit writer's lock or by one verifier at a time.
    private let segments: [Segment]

    private final class Segment: Sendable {
        let from: Int64
        let hmac: Mutex<HMACContext>
        init(from: Int64, key: SecretBytes) throws {
            self.from = from
            hmac = Mutex(try HMACContext(key: key))
        }
    }

    /// The chain under `rootKey`, with the earlier segments `history` keeps.
    init(rootKey: RootKey, history: ChainHistory = ChainHistory()) throws {
        segments = try history.segments.map { try Segment(from: $0.from, key: $0.key) }
            + [try Segment(from: history.currentFrom, key: Self.key(rootKey))]
    }

    /// The chain key a root key gives: what ``ChainHistory`` keeps of a segment once its root key is rotated.
    static func key(_ rootKey: RootKey) throws -> SecretBytes {
        try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsd audit chain 1".utf8), outputByteCount: 32)
    }

    /// The segment `sequence` is in.
    private func segment(_ sequence: Int64) -> Segment {
        segments.last(where: { $0.from <= sequence }) ?? segments[0]
    }

    /// The first sequence number of the current segment (1 for a store whose root key never rotated).
    var currentFrom: Int64 { segments[segments.count - 1].from }

    func mac(previous: [UInt8], sequence: Int64, record: [UInt8]) -> [UInt8] {
        segment(sequence).hmac.withLock { $0.mac(previous, Self.bigEndian(sequence), record) }
    }

    private static func bigEndian(_ value: Int64) -> [UInt8] {
        withUnsafeBytes(of: UInt64(value).bigEndian) { Array($0) }
    }

    static let genesis = [UInt8](repeating: 0, count: 32)

    /// The stored head: `u64 sequence ‖ mac(sequence) ‖ HMAC(K, "head" ‖ both)`, under the
    /// current segment's key.
    func head(sequence: Int64, mac: [UInt8]) -> [UInt8] {
        let body = Self.bigEndian(sequence) + mac
        return body + segments[segments.count - 1].hmac.withLock { $0.mac(Array("head".utf8), body) }
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

    /// `head` (under the key of its sequence's segment) with a mark that this root key was
    /// rotated away: `head ‖ HMAC(K, "retired" ‖ u64 sequence ‖ mac(sequence))`. An instance
    /// that saw the store rotated to a key it was not given writes it into its audit anchor, so
    /// that it never again opens a store under the key it had — such a store can only be an older
    /// copy, put back by whoever kept that key.
    func retired(_ head: [UInt8]) -> [UInt8]? {
        guard head.count == 72, let (sequence, _) = parseHead(head, earlierSegments: true) else { return nil }
        return Array(head) + segment(sequence).hmac.withLock { $0.mac(Array("retired".utf8), Array(head[0..<40])) }
    }

    /// Whether `head` carries the mark of ``retired(_:)`` under the current segment's key: the
    /// root key this chain was opened under was rotated away.
    func retiresCurrentKey(_ head: [UInt8]) -> Bool {
        guard head.count == 72 + 32, let (sequence, _) = parseHead(head, earlierSegments: true), sequence >= currentFrom else { return false }
        let mark = segments[segments.count - 1].hmac.withLock { $0.mac(Array("retired".utf8), Array(head[0..<40])) }
        return ConstantTime.equal(mark, Array(head[72...]))
    }

    /// The sequence number and MAC a head names, if the head's own MAC verifies under the
    /// current segment's key — or, with `earlierSegments`, under the key of the segment the
    /// sequence number is in: an audit anchor written just before a rotation's commit and not
    /// since (a crash between the two) names a record of the segment before.
    /// A head with the mark of ``retired(_:)`` parses as the head it marks.
    func parseHead(_ head: [UInt8], earlierSegments: Bool = false) -> (Int64, [UInt8])? {
        guard head.count == 8 + 32 + 32 || head.count == 8 + 32 + 32 + 32 else { return nil }
        let body = Array(head[0..<40])
        let sequence = Int64(bitPattern: body[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) })
        let keyed = earlierSegments ? segment(sequence) : segments[segments.count - 1]
        guard ConstantTime.equal(keyed.hmac.withLock({ $0.mac(Array("head".utf8), body) }), Array(head[40..<72])) else { return nil }
        return (sequence, Array(body[8..<40]))
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
