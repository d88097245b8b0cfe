import KMSFSCrypto
import KMSStore

/// What a store is keyed with: its root key, and the two things that must outlive a rotation of it.
///
/// Everything sealed (material, secrets, the state digest, tokens) and every MAC (the records,
/// the audit chain's current segment) is under the root key, and a rotation
/// (``KMSEngine/rotateRootKey(to:)``) does all of it again under the new one. Two things must not
/// change with it:
/// - the fingerprint key, under which KeyMaterialId is derived: users see those IDs, so they
///   stay what the store's first root key gave (`meta.fingerprint_key`, sealed under the current
///   root key, once the first rotation wrote it);
/// - the keys of the audit chain's earlier segments (``ChainHistory``), to verify the records
///   written before each rotation.
struct StoreKeys: Sendable {
    let root: RootKey
    let fingerprint: SecretBytes
    let history: ChainHistory

    static let checkLabel = "kmsd root key check"
    static let fingerprintLabel = "kmsd fingerprint key"
    static let historyLabel = "kmsd audit chain history"
    static let fingerprintName = "fingerprint_key"
    static let historyName = "audit_chain_history"

    /// The keys of a store under `root`, from what its metadata holds (`metadata` reads a value).
    /// - Throws: ``StoreError`` if a value is there but does not open under `root`.
    static func load(root: RootKey, metadata: (String) throws -> [UInt8]?) throws -> StoreKeys {
        // A store whose root key was rotated says so in its check (which only the root key
        // makes): its fingerprint key and chain history must be there, not removed to have the
        // trail or the KeyMaterialIds judged under the current key alone.
        let rotated = try metadata("root_check").flatMap { try? root.open($0, label: checkLabel, version: 0) }?.count == rotatedCheckLength
        if rotated, try metadata(fingerprintName) == nil || metadata(historyName) == nil {
            throw StoreError("the store's root key was rotated but its fingerprint key or audit chain history is gone: the store was edited outside kmsd; refusing to open it")
        }
        let fingerprint: SecretBytes
        if let sealed = try metadata(fingerprintName) {
            guard let opened = try? root.open(sealed, label: fingerprintLabel, version: 0), opened.count == 32 else {
                throw StoreError("the store's fingerprint key does not open under the root key: the store was edited outside kmsd; refusing to open it")
            }
            fingerprint = opened
        } else {
            fingerprint = try originalFingerprintKey(root)
        }
        let history = try metadata(historyName).map { sealed in
            guard let history = ChainHistory(opening: sealed, under: root) else {
                throw StoreError("the store's audit chain history does not open under the root key: the store was edited outside kmsd; refusing to open it")
            }
            return history
        } ?? ChainHistory()
        return StoreKeys(root: root, fingerprint: fingerprint, history: history)
    }

    /// The fingerprint key of a store whose root key never rotated: derived from it.
    private static func originalFingerprintKey(_ root: RootKey) throws -> SecretBytes {
        try HKDF.sha256(inputKeyMaterial: root.key, info: Array("kmsd imported material fingerprint 1".utf8), outputByteCount: 32)
    }

    /// Whether `root` opens the store's root-key check (`check`, `meta.root_check`), or what
    /// was sealed under another `label` for the same purpose (a rotation's announcement).
    static func opensCheck(_ root: RootKey, _ check: [UInt8], label: String = checkLabel) -> Bool {
        (try? root.open(check, label: label, version: 0)) != nil
    }

    /// The audit chain: earlier segments from the history, the current one under the root key.
    func chain() throws -> AuditChain { try AuditChain(rootKey: root, history: history) }

    /// The keys after a rotation to `next` whose first audit record is `from`.
    func rotated(to next: RootKey, from: Int64) throws -> StoreKeys {
        var history = history
        history.segments.append((from: history.currentFrom, key: try AuditChain.key(root)))
        history.currentFrom = from
        return StoreKeys(root: next, fingerprint: fingerprint, history: history)
    }

    /// A rotated store's check value is one byte longer than a new store's (32 random bytes).
    static let rotatedCheckLength = 33

    /// The metadata that says what these keys are, sealed under the root key: the check (of a
    /// rotated store), the fingerprint key and the chain history.
    func sealedMetadata() throws -> [(name: String, value: [UInt8])] {
        [("root_check", try root.seal(try SecretBytes.random(count: Self.rotatedCheckLength), label: Self.checkLabel, version: 0)),
         (Self.fingerprintName, try root.seal(fingerprint, label: Self.fingerprintLabel, version: 0)),
         (Self.historyName, try history.sealed(under: root))]
    }
}

/// The audit chain's segments before the current one: where each began and its key (the key
/// ``AuditChain`` derived from the root key of that time), and where the current one begins.
/// Kept sealed under the current root key in `meta.audit_chain_history`.
struct ChainHistory: Sendable {
    var segments: [(from: Int64, key: SecretBytes)] = []
    var currentFrom: Int64 = 1

    init() {}

    /// `u64 currentFrom ‖ (u64 from ‖ key)*`, sealed.
    func sealed(under root: RootKey) throws -> [UInt8] {
        var plain: [UInt8] = []
        plain.reserveCapacity(8 + segments.count * 40)
        plain.appendUInt64(UInt64(bitPattern: currentFrom))
        for segment in segments {
            plain.appendUInt64(UInt64(bitPattern: segment.from))
            segment.key.withUnsafeBytes { plain += $0 }
        }
        return try root.seal(SecretBytes(wiping: &plain), label: StoreKeys.historyLabel, version: 0)
    }

    /// What ``sealed(under:)`` made, or nil if it does not open under `root` or is malformed
    /// (segments out of order, or not before the current one).
    init?(opening sealed: [UInt8], under root: RootKey) {
        guard let plain = try? root.open(sealed, label: StoreKeys.historyLabel, version: 0), plain.count >= 8, (plain.count - 8) % 40 == 0 else {
            return nil
        }
        let parsed: (Int64, [(Int64, SecretBytes)]) = plain.withUnsafeBytes { bytes in
            func integer(_ at: Int) -> Int64 { Int64(bitPattern: bytes[at..<at + 8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }) }
            let segments = stride(from: 8, to: bytes.count, by: 40).map { (integer($0), SecretBytes(copying: bytes[$0 + 8..<$0 + 40])) }
            return (integer(0), segments)
        }
        var previous: Int64 = 0
        for (from, _) in parsed.1 {
            guard from > previous else { return nil }
            previous = from
        }
        guard parsed.0 > previous else { return nil }
        currentFrom = parsed.0
        segments = parsed.1.map { (from: $0.0, key: $0.1) }
    }
}
