import Foundation
import KMSEngine
import KMSFSCrypto
import Synchronization

/// How an embedded store's root key is protected, chosen at `kmsfs init` or `kmsfs protect`.
///
/// The root key seals every key in the store, so whoever has it and a copy of the volume reads
/// every file. Kept beside the store in the clear (``unprotected``), a stolen disk or backup
/// carries it; each other form keeps it where a copy of the volume and its store does not reach.
public enum RootKeyProtection: Sendable {
    /// Sealed under a key derived from this passphrase with scrypt (``Scrypt/Cost/interactive``).
    case passphrase(SecretBytes)
    /// The root key itself in a file the operator keeps elsewhere (another disk, a USB key).
    case keyFile(String)
    /// A systemd credential: `systemd-creds encrypt` seals it with the TPM where there is one
    /// (else the machine's credential secret), into `store/name`.
    case credential(name: String, store: String)
    /// `root.key` beside the store, in the clear: for demos and tests only.
    case unprotected

    public static let defaultCredentialStore = "/etc/credstore.encrypted"

    /// Whether systemd-creds seals with a TPM2 here; without one a credential is sealed with a
    /// secret on this machine's disk, which a copy of the whole disk carries.
    public static var credentialsUseTPM2: Bool { SystemdCredential.hasTPM2 }
}

/// A passphrase that is used once: the unlock that needs it takes it, and it is released (and
/// wiped) then, not kept for the life of a mount.
public final class OneTimePassphrase: Sendable {
    private let value: Mutex<SecretBytes?>
    public init(_ passphrase: SecretBytes) { value = Mutex(passphrase) }
    func take() -> SecretBytes? { value.withLock { taken in defer { taken = nil }; return taken } }
}

/// What a command was given to unlock a protected root key: never read from the volume.
public struct RootKeyUnlock: Sendable, Equatable {
    public var passphrase: OneTimePassphrase?
    /// Overrides the key file the store records (a key file that moved, a mounted USB key).
    public var keyFile: String?
    public init(passphrase: OneTimePassphrase? = nil, keyFile: String? = nil) {
        self.passphrase = passphrase
        self.keyFile = keyFile
    }

    public static func == (a: RootKeyUnlock, b: RootKeyUnlock) -> Bool { a.passphrase === b.passphrase && a.keyFile == b.keyFile }
}

/// `root-key.json` in the store's directory: how to get the root key. Holds no secret in the
/// clear: a passphrase-sealed key is `nonce ‖ AES-256-GCM ‖ tag` under the scrypt-derived key,
/// with the record's cost and salt as additional data (a changed cost or salt fails to open).
struct RootKeyRecord: Codable, Equatable {
    static let fileName = "root-key.json"
    /// The record of the new key of a rotation under way (`kmsfs protect --new-root-key`).
    static let nextFileName = "root-key.next.json"
    static let currentFormat = 1

    enum Kind: String, Codable {
        case passphrase
        case keyFile = "key-file"
        case credential = "systemd-credential"
    }

    var format: Int
    var protection: Kind
    var scrypt: Scrypt.Cost?
    var salt: String?
    var sealed: String?
    var keyFile: String?
    var credential: String?
    var credentialStore: String?
    /// A rotation's record of the new key (``nextFileName``): a MAC of the rest under the
    /// current root key, so that a record planted there by whoever can write the store's
    /// directory is not taken for one.
    var authentication: String?
    /// A rotation's record of the new key: the key's identifier (``RootKey/identifier``, which
    /// says nothing of it), so that only that key is taken from the key file or credential it
    /// names — not one that appears there later.
    var keyIdentifier: String?

    init(protection: Kind) {
        format = Self.currentFormat
        self.protection = protection
    }

    static func load(path: String) throws -> RootKeyRecord? {
        var status = stat()
        guard lstat(path, &status) == 0 else { return nil }
        let data = Data(try GuardedFile.read(path, what: "the root key record", maximumSize: 64 << 10, access: .ownerWritable))
        guard let record = try? JSONDecoder().decode(RootKeyRecord.self, from: data) else {
            throw VolumeError.rootKey("\(path) is not a valid root key record")
        }
        guard record.format == currentFormat else { throw VolumeError.rootKey("\(path) has format \(record.format); this kmsfs reads \(currentFormat)") }
        return record
    }

    func write(path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(Array(try encoder.encode(self)) + [0x0a], to: path, mode: 0o600)
    }

    /// A record naming a key file.
    static func naming(keyFile path: String) -> RootKeyRecord {
        var record = RootKeyRecord(protection: .keyFile)
        record.keyFile = path
        return record
    }

    /// A record naming a sealed systemd credential.
    static func naming(credential name: String, store: String) -> RootKeyRecord {
        var record = RootKeyRecord(protection: .credential)
        record.credential = name
        record.credentialStore = store
        return record
    }

    /// This record with its ``authentication`` under `rootKey`.
    func authenticated(under rootKey: RootKey) throws -> RootKeyRecord {
        var record = self
        record.authentication = Data(try mac(under: rootKey)).base64EncodedString()
        return record
    }

    func isAuthenticated(under rootKey: RootKey) -> Bool {
        guard let given = authentication.flatMap({ Data(base64Encoded: $0) }), let expected = try? mac(under: rootKey) else { return false }
        return ConstantTime.equal(Array(given), expected)
    }

    /// HMAC-SHA-256 under a key derived from `rootKey`, of the record without its authentication
    /// (JSON, keys sorted).
    private func mac(under rootKey: RootKey) throws -> [UInt8] {
        var bare = self
        bare.authentication = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let key = try HKDF.sha256(inputKeyMaterial: rootKey.key, info: Array("kmsfs next root key record".utf8), outputByteCount: 32)
        return HMAC.sha256(key: key, message: Array(try encoder.encode(bare)))
    }

    /// The additional data of the sealed key: what the derivation depends on.
    static func sealedAAD(cost: Scrypt.Cost, salt: [UInt8]) -> [UInt8] {
        Array("kmsfs root key 1 scrypt \(cost.n) \(cost.r) \(cost.p) ".utf8) + salt
    }

    /// A record sealing `rootKey` under `passphrase`.
    static func sealing(_ rootKey: SecretBytes, passphrase: SecretBytes, cost: Scrypt.Cost = .interactive) throws -> RootKeyRecord {
        let salt = try SecureRandom.bytes(count: 32)
        let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
        let kek = try Scrypt.derive(passphrase: passphrase, salt: salt, cost: cost, byteCount: AESGCM.keyByteCount)
        var plain = rootKey.withUnsafeBytes { Array($0) }
        defer { plain.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        let sealed = try AESGCM.seal(key: kek, nonce: nonce, additionalData: sealedAAD(cost: cost, salt: salt), plaintext: plain)
        var record = RootKeyRecord(protection: .passphrase)
        record.scrypt = cost
        record.salt = Data(salt).base64EncodedString()
        record.sealed = Data(nonce + sealed).base64EncodedString()
        return record
    }

    /// The root key this passphrase-sealed record holds.
    /// - Throws: ``VolumeError/rootKey(_:)`` "wrong passphrase" when it does not open.
    func open(passphrase: SecretBytes) throws -> SecretBytes {
        guard let cost = scrypt, cost.isAcceptable, let salt = salt.flatMap({ Data(base64Encoded: $0) }),
              let sealed = sealed.flatMap({ Data(base64Encoded: $0) }), salt.count >= 16,
              sealed.count == AESGCM.nonceByteCount + AESGCM.keyByteCount + AESGCM.tagByteCount
        else { throw VolumeError.rootKey("the root key record is damaged (cost, salt or sealed key)") }
        let kek = try Scrypt.derive(passphrase: passphrase, salt: Array(salt), cost: cost, byteCount: AESGCM.keyByteCount)
        let bytes = Array(sealed)
        do {
            var plain = try AESGCM.open(key: kek, nonce: Array(bytes[0..<AESGCM.nonceByteCount]),
                                        additionalData: Self.sealedAAD(cost: cost, salt: Array(salt)),
                                        sealed: Array(bytes[AESGCM.nonceByteCount...]))
            return SecretBytes(wiping: &plain)
        } catch CryptoError.authenticationFailure {
            throw VolumeError.rootKey("wrong passphrase (or a changed root key record)")
        }
    }
}
