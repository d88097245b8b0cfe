import KMSFSCrypto

/// MACs the store's records under a key derived from the root key, so that a record changed
/// behind the engine's back — a key moved to another account with one SQL UPDATE, an access
/// key given to another principal, an alias pointed elsewhere — is refused at start, not obeyed.
///
/// `HMAC-SHA-256(HKDF(root key, "kmsd record mac 1"), table ‖ 0 ‖ field ‖ 0 ‖ field ...)`: the
/// table and every column the engine reads are in it, so a row cannot be moved to another
/// table or ID either. (A row deleted whole is not detected here; the audit trail records it.)
struct RecordAuthenticator: Sendable {
    private let key: SecretBytes

    init(rootKey: RootKey) throws {
        key = try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsd record mac 1".utf8), outputByteCount: 32)
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
