import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto

/// The authentication of a volume's configuration: a MAC under a 256-bit seal key that the
/// volume's key service made (GenerateDataKey under the default key) and alone can unwrap.
///
/// Whoever can write the backing directory can rewrite `kmsfs.conf` but cannot make a MAC
/// that verifies under this volume's key without the key service's consent; a mount verifies it
/// before it reports ready, which is also its one real call to the key service with its
/// credentials: a mount that cannot use its keys fails at once, with the service's reason.
public struct VolumeSeal: Codable, Sendable, Equatable {
    /// The KMS key that wraps the seal key (an ARN).
    public var keyARN: String
    /// The seal key's KMS ciphertext blob, base64.
    public var wrappedKey: String
    /// HMAC-SHA-256 of ``VolumeConfiguration/authenticatedBytes``, hex.
    public var mac: String

    static func context(volumeID: String) -> EncryptionContext {
        ["kmsfs:volume": volumeID, "kmsfs:purpose": "configuration"]
    }

    /// Seals `configuration` with a new seal key made under its default key.
    static func seal(_ configuration: inout VolumeConfiguration, client: any KMSClient) throws {
        let dataKey = try client.generateDataKey(keyID: configuration.defaultKeyID, context: context(volumeID: configuration.volumeID))
        configuration.seal = VolumeSeal(keyARN: dataKey.keyARN, wrappedKey: Data(dataKey.ciphertextBlob).base64EncodedString(), mac: "")
        configuration.seal!.mac = hex(HMAC.sha256(key: dataKey.plaintext, message: configuration.authenticatedBytes))
    }

    /// Re-seals `configuration` after a change, with the seal key it has (which `client` unwraps).
    static func reseal(_ configuration: inout VolumeConfiguration, client: any KMSClient) throws {
        let key = try unwrap(configuration, client: client, expectedKeyARN: nil)
        configuration.seal!.mac = hex(HMAC.sha256(key: key, message: configuration.authenticatedBytes))
    }

    /// Checks `configuration`'s MAC with the key service.
    /// - Parameter expectedKeyARN: the seal's key as this machine recorded it (``TrustedVolume``);
    ///   a configuration sealed under any other key is refused, even if that key's owner made
    ///   the MAC verify.
    /// - Throws: ``VolumeError/tamperedConfiguration(_:)`` if the MAC or the key is wrong;
    ///   ``VolumeError/keyService(_:)`` when the service cannot be asked or refuses.
    public static func verify(_ configuration: VolumeConfiguration, client: any KMSClient, expectedKeyARN: String?) throws {
        guard let seal = configuration.seal else { throw VolumeError.tamperedConfiguration("it has no seal") }
        if let expectedKeyARN, expectedKeyARN != seal.keyARN {
            throw VolumeError.tamperedConfiguration("it is sealed under \(seal.keyARN), but this machine knows the volume under \(expectedKeyARN)")
        }
        let key = try unwrap(configuration, client: client, expectedKeyARN: expectedKeyARN)
        let expected = HMAC.sha256(key: key, message: configuration.authenticatedBytes)
        guard ConstantTime.equal(expected, seal.mac.utf8.count == 64 ? unhex(seal.mac) ?? [] : []) else {
            throw VolumeError.tamperedConfiguration("its MAC does not verify")
        }
    }

    private static func unwrap(_ configuration: VolumeConfiguration, client: any KMSClient, expectedKeyARN: String?) throws -> SecretBytes {
        guard let seal = configuration.seal, let blob = Data(base64Encoded: seal.wrappedKey), !blob.isEmpty else {
            throw VolumeError.tamperedConfiguration("its seal is malformed")
        }
        let context = context(volumeID: configuration.volumeID)
        let result: Result<SecretBytes, KMSClientError> = Result { () throws(KMSClientError) -> SecretBytes in
            try client.decrypt(ciphertextBlob: Array(blob), context: context, keyID: expectedKeyARN ?? seal.keyARN)
        }
        switch result {
        case let .success(key): return key
        case let .failure(error) where error.kind == .invalidCiphertext:
            let code = error.code ?? "InvalidCiphertextException"
            throw VolumeError.tamperedConfiguration("the key service does not unwrap its seal (\(code))")
        case let .failure(error):
            throw VolumeError.keyService(KeyServiceProblem.describe(error))
        }
    }
}

extension VolumeConfiguration {
    /// `kmsfs allow-key`: adds keys that directories may name for their new files, on an
    /// unmounted volume. The configuration is verified first and sealed again after the change
    /// (with the same seal key), so only someone the key service lets unwrap it can widen it.
    /// - Throws: ``VolumeError`` (in use, tampered, key service), or a key that does not exist.
    @discardableResult
    public static func allowKeys(_ keyIDs: [String], cipherDirectory: String, options: KeyServiceOptions = KeyServiceOptions()) throws
        -> VolumeConfiguration {
        let lock = try VolumeLock(cipherDirectory: cipherDirectory)
        defer { withExtendedLifetime(lock) {} }
        var configuration = try load(cipherDirectory: cipherDirectory)
        let (client, record) = try configuration.makeKeyClient(cipherDirectory: cipherDirectory, options: options)
        try VolumeSeal.verify(configuration, client: client, expectedKeyARN: record?.sealKeyARN)
        for keyID in keyIDs where !configuration.allowedKeyIDs.contains(keyID) {
            do { _ = try client.describeKey(keyID: keyID) } catch {
                throw VolumeError.keyService("\(keyID): \(KeyServiceProblem.describe(error))")
            }
            configuration.allowedKeyIDs.append(keyID)
        }
        try VolumeSeal.reseal(&configuration, client: client)
        try configuration.write(cipherDirectory: cipherDirectory)
        if let engine = (client as? EmbeddedKMSClient)?.engine { try engine.flushAudit() }
        return configuration
    }
}
