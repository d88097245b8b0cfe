import KMSFSCrypto

/// Binds a sealed secret (an access key's, a custom key store's) to the record it goes with.
///
/// The sealed secret sits beside its record in the store, outside the record's MAC: whoever can
/// write the store could put back an older sealed secret of the same ID (a revoked key's secret
/// under the key re-created with that ID, a custom key store's former password). So each record
/// names, in a MAC'ed field, a random binding made with the secret, and the secret is sealed
/// under a label that includes it: an older sealed secret has another binding, and does not open.
/// Records written before have none, and keep the label without it.
enum SecretBinding {
    static func make() throws -> String {
        try SecureRandom.bytes(count: 8).map { String(format: "%02x", $0) }.joined()
    }

    static func label(_ base: String, _ binding: String?) -> String {
        binding.map { base + " " + $0 } ?? base
    }
}
