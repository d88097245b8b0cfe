import KMSFSCrypto

/// MACs the store's records under a key derived from the root key, so that a record changed
/// behind the engine's back — a key moved to another account with one SQL UPDATE, an access
/// key given to another principal, an alias pointed elsewhere — is refused at start, not obeyed.
///
/// `HMAC-SHA-256(HKDF(root key, "kmsd record mac 1"), table ‖ 0 ‖ field ‖ 0 ‖ field ...)`: the
/// table and every column the engine reads are in it, so a row cannot be moved to another
/// table or ID either. A row deleted whole, or an older row put back (a revoked grant, a deleted
/// access key), each with a MAC that verifies, is caught by the state digest instead (below).
struct RecordAuthenticator: Sendable {
    private let key: SecretBytes
    /// Keys the state digest's elements: unknown to a store writer, so the digest of a set of
    /// rows cannot be computed — or balanced by deleting other rows — without the root key.
    private let elementKey: SecretBytes
    private let rootKey: RootKey

    init(rootKey: RootKey) throws {
        key = try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsd record mac 1".utf8), outputByteCount: 32)
        elementKey = try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsd state digest element 1".utf8), outputByteCount: 32)
        self.rootKey = rootKey
    }

    /// One record's share of the state digest: the digest is the sum (mod 2^256) of every
    /// authenticated record's element, so a change updates it in constant time.
    func element(table: String, mac: [UInt8]) -> [UInt8] {
        HMAC.sha256(key: elementKey, message: Array(table.utf8) + [0] + mac)
    }

    private static let digestLabel = "kmsd state digest"

    /// The digest with the audit sequence and the store generation it was written at, sealed (a
    /// store writer learns nothing of it, not even which changes cancel out; and cannot move the
    /// generation, the signal instances serving one store together follow, without it).
    func sealDigest(_ digest: [UInt8], head: Int64, generation: Int64) throws -> [UInt8] {
        var plain = digest
        withUnsafeBytes(of: UInt64(bitPattern: head).bigEndian) { plain += $0 }
        withUnsafeBytes(of: UInt64(bitPattern: generation).bigEndian) { plain += $0 }
        return try rootKey.seal(SecretBytes(wiping: &plain), label: Self.digestLabel, version: 0)
    }

    /// What ``sealDigest(_:head:generation:)`` sealed, or nil if it does not open under the root
    /// key. A digest sealed before generations were in it (40 bytes) is at generation 0.
    func openDigest(_ sealed: [UInt8]) -> SealedState? {
        guard let plain = try? rootKey.open(sealed, label: Self.digestLabel, version: 0), plain.count == 40 || plain.count == 48 else { return nil }
        return plain.withUnsafeBytes { bytes in
            func integer(_ range: Range<Int>) -> Int64 { Int64(bitPattern: bytes[range].reduce(0) { $0 << 8 | UInt64($1) }) }
            return SealedState(digest: Array(bytes[0..<32]), head: integer(32..<40), generation: bytes.count == 48 ? integer(40..<48) : 0)
        }
    }

    func mac(table: String, _ fields: [String]) -> [UInt8] {
        var message = Array(table.utf8)
        for field in fields {
            message.append(0)
            message += Array(field.utf8)
        }
        return HMAC.sha256(key: key, message: message)
    }

    func verifies(_ mac: [UInt8]?, table: String, _ fields: [String]) -> Bool {
        guard let mac else { return false }
        return ConstantTime.equal(mac, self.mac(table: table, fields))
    }
}

/// What the sealed state digest says: the digest of the set of records, the audit record it was
/// written with, and the store's generation then.
struct SealedState: Equatable {
    var digest: [UInt8]
    var head: Int64
    var generation: Int64
}
