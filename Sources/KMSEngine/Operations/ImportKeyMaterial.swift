import Foundation
import KMSFSCrypto

public struct GetParametersForImportResponse: Sendable {
    public var keyId: String
    public var importToken: [UInt8]
    /// The wrapping key's public half, DER SubjectPublicKeyInfo.
    public var publicKey: [UInt8]
    public var parametersValidTo: Date
}

/// Imported key material (origin EXTERNAL), as AWS has it: GetParametersForImport hands out an
/// RSA wrapping key and an import token valid 24 hours; ImportKeyMaterial unwraps the material
/// (RSA-OAEP, or RSA-OAEP of an AES key plus AES key wrap with padding), makes the key usable,
/// and lets it expire; DeleteImportedKeyMaterial and expiry return it to PendingImport, and only
/// the same material may come back.
extension KMSEngine {
    static let importParametersLifetime: TimeInterval = 24 * 3600
    static let maximumValidity: TimeInterval = 365 * 86_400

    public func getParametersForImport(keyID: String, wrappingAlgorithm: WrappingAlgorithm, wrappingKeySpec: WrappingKeySpec,
                                       caller: Caller) throws -> GetParametersForImportResponse {
        try perform(.getParametersForImport, caller) { record, state in
            let key = try managedKey(keyID, action: .getParametersForImport,
                                     extra: ["kms:wrappingalgorithm": [wrappingAlgorithm.rawValue], "kms:wrappingkeyspec": [wrappingKeySpec.rawValue]],
                                     for: caller, in: state, record: &record)
            try Self.requireImportable(key.record)
            let bits: Int
            switch wrappingKeySpec {
            case .rsa2048: bits = 2048
            case .rsa3072: bits = 3072
            case .rsa4096: bits = 4096
            case .sm2: throw KMSError(.unsupportedOperation, "The SM2 wrapping key spec is for AWS's China Regions; it is not supported here")
            }
            guard wrappingAlgorithm.oaepDigest != nil else {
                throw KMSError(.unsupportedOperation, "The \(wrappingAlgorithm.rawValue) wrapping algorithm is not supported (use RSAES_OAEP_SHA_1/256 or RSA_AES_KEY_WRAP_SHA_1/256)")
            }
            try Self.endDryRun(caller)
            let wrapping = try AsymmetricKey.generate(.rsa(bits: bits))
            let validTo = clock.now().addingTimeInterval(Self.importParametersLifetime)
            let token = ImportToken(keyID: key.record.keyID, algorithm: wrappingAlgorithm, validTo: validTo, wrappingKey: try wrapping.privateKeyDER())
            return GetParametersForImportResponse(keyId: key.record.arn, importToken: try token.sealed(with: rootKey),
                                                  publicKey: try wrapping.publicKeyDER(), parametersValidTo: validTo)
        }
    }

    /// ImportKeyMaterial; returns the key's ARN and the material's KeyMaterialId.
    ///
    /// ImportType NEW_KEY_MATERIAL (the default for a key that never had material) brings the
    /// key's first material, or — symmetric keys only — material for the next RotateKeyOnDemand;
    /// EXISTING_KEY_MATERIAL (the default after) brings back material the key already has (after
    /// a delete or expiry, or to change its expiry or description), found by its fingerprint.
    @discardableResult
    public func importKeyMaterial(keyID: String, importToken: [UInt8], encryptedKeyMaterial: [UInt8], validTo: Date? = nil,
                                  expirationModel: ExpirationModel? = nil, importType: ImportType? = nil,
                                  keyMaterialDescription: String? = nil, keyMaterialID: String? = nil,
                                  caller: Caller) throws -> (keyARN: String, keyMaterialID: String) {
        let model = expirationModel ?? (validTo == nil ? .doesNotExpire : .expires)
        var conditions = ["kms:expirationmodel": [model.rawValue]]
        if let validTo { conditions["kms:validto"] = [String(Int(validTo.timeIntervalSince1970))] }
        return try manage(.importKeyMaterial, caller) { record, state in
            let key = try managedKey(keyID, action: .importKeyMaterial, extra: conditions, for: caller, in: state, record: &record)
            try Self.requireImportable(key.record)
            let now = clock.now()
            switch (model, validTo) {
            case (.expires, nil):
                throw KMSError(.validation, "ValidTo is required when ExpirationModel is KEY_MATERIAL_EXPIRES")
            case (.doesNotExpire, _?):
                throw KMSError(.validation, "ValidTo must be omitted when ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE")
            case let (.expires, date?):
                guard date > now, date <= now.addingTimeInterval(Self.maximumValidity) else {
                    throw KMSError(.validation, "ValidTo must be in the future and at most 365 days away")
                }
            default: break
            }
            if let keyMaterialDescription { try Validate.length(keyMaterialDescription, "keyMaterialDescription", 0...256) }
            let symmetric = key.record.spec == .symmetricDefault
            if !symmetric, importType != nil || keyMaterialDescription != nil || keyMaterialID != nil {
                throw KMSError(.validation, "ImportType, KeyMaterialDescription and KeyMaterialId apply only to symmetric encryption keys")
            }
            let hasMaterial = !key.record.allVersions.isEmpty
            let type = importType ?? (hasMaterial ? .existing : .new)
            if type == .new, keyMaterialID != nil {
                throw KMSError(.validation, "KeyMaterialId cannot be given with ImportType NEW_KEY_MATERIAL")
            }
            guard let token = ImportToken(opening: importToken, with: rootKey) ?? previousRootKey.flatMap({ ImportToken(opening: importToken, with: $0) }) else {
                throw KMSError(.invalidImportToken, "The import token is not valid")
            }
            guard token.keyID == key.record.keyID else {
                throw KMSError(.invalidImportToken, "The import token was issued for another key")
            }
            guard token.validTo > now else {
                throw KMSError(.expiredImportToken, "The import token expired at \(token.validTo)")
            }
            let material = try Self.unwrap(encryptedKeyMaterial, token: token)
            let parsed: KeyMaterial
            do {
                parsed = try Self.importedMaterial(material, spec: key.record.spec)
            } catch let error as KMSError {
                throw error
            } catch {
                throw KMSError(.incorrectKeyMaterial, "The key material is not \(key.record.spec.rawValue) material")
            }
            let fingerprint = try materialFingerprint(material, keyID: key.record.keyID)
            var updated = key.record
            var target: KeyVersion
            switch type {
            case .new:
                if hasMaterial {
                    guard symmetric else {
                        throw KMSError(.incorrectKeyMaterial, "\(key.record.arn) is not a symmetric encryption key: only the same material may be imported again")
                    }
                    guard !updated.allVersions.contains(where: { $0.materialID == fingerprint }) else {
                        throw KMSError(.incorrectKeyMaterial, "This key material is already associated with \(key.record.arn): import it with ImportType EXISTING_KEY_MATERIAL")
                    }
                    guard updated.pendingRotation == nil else {
                        throw KMSError(.validation, "\(key.record.arn) already has key material pending rotation: rotate it (RotateKeyOnDemand) or delete it first")
                    }
                }
                target = KeyVersion(version: (updated.allVersions.map(\.version).max() ?? 0) + 1, creationDate: now, rotationType: nil,
                                    materialID: fingerprint)
            case .existing:
                guard hasMaterial else {
                    throw KMSError(.validation, "\(key.record.arn) has no key material yet: import it with ImportType NEW_KEY_MATERIAL")
                }
                if let keyMaterialID, keyMaterialID != fingerprint {
                    throw KMSError(.incorrectKeyMaterial, "The key material does not have the KeyMaterialId \(keyMaterialID)")
                }
                guard let known = updated.allVersions.first(where: { $0.materialID == fingerprint }) else {
                    throw KMSError(.incorrectKeyMaterial, "The key material is not material \(key.record.arn) has: only the same material may be imported again")
                }
                target = known
            }
            try Self.endDryRun(caller)
            target.expirationModel = model
            target.validTo = validTo
            if let keyMaterialDescription { target.materialDescription = keyMaterialDescription }
            var changes: [StoreChange] = []
            var versions = key.material
            if versions[target.version] == nil {
                versions[target.version] = parsed
                changes.append(.putMaterial(updated.identity, version: target.version,
                                            sealed: try rootKey.seal(material, label: updated.identity.materialLabel, version: target.version)))
            }
            if let index = updated.versions.firstIndex(where: { $0.version == target.version }) {
                updated.versions[index] = target
            } else if updated.versions.isEmpty {
                updated.versions = [target]
            } else {
                updated.pendingRotation = target
            }
            // The current material back (or first here): the key is usable again.
            if updated.currentVersion?.version == target.version, updated.state == .pendingImport { updated.state = .enabled }
            state.keys[updated.identity] = LiveKey(record: updated, material: versions, policy: key.policy)
            record.note = "key material \(fingerprint) imported (\(type.rawValue), \(model.rawValue))"
            return ((updated.arn, fingerprint), [.putKey(updated)] + changes)
        }
    }

    /// DeleteImportedKeyMaterial: one material (by KeyMaterialId; the current one by default)
    /// goes — its store row deleted — while its version stays, so that it may come back. Without
    /// its current material the key is PendingImport; without an older one, the ciphertexts of
    /// that version wait. Returns the key's ARN and the deleted material's ID.
    @discardableResult
    public func deleteImportedKeyMaterial(keyID: String, keyMaterialID: String? = nil, caller: Caller) throws -> (keyARN: String, keyMaterialID: String?) {
        try manage(.deleteImportedKeyMaterial, caller) { record, state in
            let key = try managedKey(keyID, action: .deleteImportedKeyMaterial, for: caller, in: state, record: &record)
            guard key.record.origin == .external else {
                throw KMSError(.unsupportedOperation, "\(key.record.arn) has origin \(key.record.origin.rawValue): it has no imported material")
            }
            guard key.record.state != .pendingDeletion else {
                throw KMSError(.invalidState, "\(key.record.arn) is pending deletion.")
            }
            let target: KeyVersion?
            if let keyMaterialID {
                guard let found = key.record.allVersions.first(where: { $0.materialID == keyMaterialID }) else {
                    throw KMSError(.notFound, "\(key.record.arn) has no key material \(keyMaterialID)")
                }
                target = found
            } else {
                target = key.record.currentVersion
            }
            try Self.endDryRun(caller)
            guard let target else { return ((key.record.arn, nil), []) }
            let (live, changes) = Self.withoutMaterial(key, version: target.version)
            state.keys[live.record.identity] = live
            record.note = "key material \(target.materialID ?? "?") deleted"
            return ((live.record.arn, target.materialID), changes)
        }
    }

    /// The key with one version's imported material gone (deleted, or expired): its version
    /// stays with its ID, no expiration; PendingImport if it was the current one (unless pending deletion).
    static func withoutMaterial(_ key: LiveKey, version: UInt32) -> (LiveKey, [StoreChange]) {
        var record = key.record
        func clear(_ entry: inout KeyVersion) {
            entry.expirationModel = nil
            entry.validTo = nil
        }
        if let index = record.versions.firstIndex(where: { $0.version == version }) { clear(&record.versions[index]) }
        if record.pendingRotation?.version == version { clear(&record.pendingRotation!) }
        if record.currentVersion?.version == version, record.state != .pendingDeletion { record.state = .pendingImport }
        var material = key.material
        material[version] = nil
        return (LiveKey(record: record, material: material, policy: key.policy),
                [.putKey(record), .deleteMaterial(record.identity, version: version)])
    }

    static func requireImportable(_ key: KeyRecord) throws(KMSError) {
        guard key.origin == .external else {
            throw KMSError(.unsupportedOperation, "\(key.arn) has origin \(key.origin.rawValue): only EXTERNAL keys take imported material")
        }
        switch key.state {
        case .pendingImport, .enabled, .disabled: return
        default: throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue).")
        }
    }

    /// The material inside `wrapped`, per the token's algorithm; InvalidCiphertextException if
    /// it was not wrapped with the token's wrapping key and algorithm.
    static func unwrap(_ wrapped: [UInt8], token: ImportToken) throws -> SecretBytes {
        let invalid = KMSError(.invalidCiphertext, "The encrypted key material does not decrypt with the import parameters (\(token.algorithm.rawValue))")
        try Validate.sensitiveLength(wrapped.count, member: "encryptedKeyMaterial", 1...6144)
        let wrapping = try AsymmetricKey(privateKeyDER: token.wrappingKey)
        guard let digest = token.algorithm.oaepDigest else { throw invalid }
        do {
            switch token.algorithm {
            case .rsaesOAEPSHA1, .rsaesOAEPSHA256:
                return try wrapping.decryptOAEP(wrapped, digest: digest)
            case .rsaAESKeyWrapSHA1, .rsaAESKeyWrapSHA256:
                guard case let .rsa(bits) = wrapping.kind, wrapped.count > bits / 8 else { throw invalid }
                let aesKey = try wrapping.decryptOAEP(Array(wrapped[0..<bits / 8]), digest: digest)
                guard aesKey.count == 32 else { throw invalid }
                return try AESKeyWrap.unwrapPadded(Array(wrapped[(bits / 8)...]), key: aesKey)
            default:
                throw invalid
            }
        } catch CryptoError.authenticationFailure {
            throw invalid
        }
    }

    /// Material of `spec` as AWS takes it: 32 bytes for SYMMETRIC_DEFAULT, an HMAC key of at
    /// least the digest's length (up to 64 bytes), PKCS#8 DER of a key pair of the spec.
    static func importedMaterial(_ material: SecretBytes, spec: KeySpec) throws -> KeyMaterial {
        if spec.isSymmetric, material.count != 32 {
            throw KMSError(.incorrectKeyMaterial, "SYMMETRIC_DEFAULT key material is 32 bytes, not \(material.count)")
        }
        if let digest = spec.hmacDigest, !(digest.byteCount...64).contains(material.count) {
            throw KMSError(.incorrectKeyMaterial, "\(spec.rawValue) key material is \(digest.byteCount) to 64 bytes, not \(material.count)")
        }
        return try KeyMaterial(spec: spec, bytes: material)
    }

    /// A fingerprint of imported material that says nothing of it without the store's
    /// fingerprint key (``StoreKeys``): `HMAC(k, key ID ‖ 0 ‖ HMAC(k, material))`, the material
    /// MAC'ed where it lies (no copy). It is the material's KeyMaterialId, as AWS derives that
    /// from the key ID and the material.
    func materialFingerprint(_ material: SecretBytes, keyID: String) throws -> String {
        try Self.materialFingerprint(material, keyID: keyID, key: keys.withLock { $0.fingerprint })
    }

    static func materialFingerprint(_ material: SecretBytes, keyID: String, key: SecretBytes) throws -> String {
        let inner = material.withUnsafeBytes { bytes in HMAC.sha256(key: key, message: bytes) }
        return hex(HMAC.sha256(key: key, message: Array(keyID.utf8) + [0] + inner))
    }
}

/// What GetParametersForImport hands out, sealed under the root key: for which key, with which
/// algorithm, until when, and the wrapping key's private half — so kmsd keeps no state for it.
struct ImportToken {
    static let label = "kmsd import token"
    var keyID: String
    var algorithm: WrappingAlgorithm
    var validTo: Date
    var wrappingKey: SecretBytes

    init(keyID: String, algorithm: WrappingAlgorithm, validTo: Date, wrappingKey: SecretBytes) {
        self.keyID = keyID
        self.algorithm = algorithm
        self.validTo = validTo
        self.wrappingKey = wrappingKey
    }

    /// `u8 len ‖ key ID ‖ u8 len ‖ algorithm ‖ i64 valid-to (s) ‖ PKCS#8 DER`, sealed.
    func sealed(with rootKey: RootKey) throws -> [UInt8] {
        // Sized once: no reallocation leaves a copy of the wrapping key behind before the wipe.
        var plain: [UInt8] = []
        plain.reserveCapacity(2 + keyID.utf8.count + algorithm.rawValue.utf8.count + 8 + wrappingKey.count)
        plain += [UInt8(keyID.utf8.count)] + Array(keyID.utf8) + [UInt8(algorithm.rawValue.utf8.count)] + Array(algorithm.rawValue.utf8)
        withUnsafeBytes(of: Int64(validTo.timeIntervalSince1970).bigEndian) { plain += $0 }
        wrappingKey.withUnsafeBytes { plain += $0 }
        return try rootKey.seal(SecretBytes(wiping: &plain), label: Self.label, version: 0)
    }

    init?(opening sealed: [UInt8], with rootKey: RootKey) {
        guard let plain = try? rootKey.open(sealed, label: Self.label, version: 0) else { return nil }
        let parsed: (String, WrappingAlgorithm, Date, SecretBytes)? = plain.withUnsafeBytes { bytes in
            var index = 0
            func take(_ count: Int) -> ArraySlice<UInt8>? {
                guard count >= 0, index + count <= bytes.count else { return nil }
                defer { index += count }
                return ArraySlice(bytes[index..<index + count])
            }
            guard let idLength = take(1)?.first, let id = take(Int(idLength)), let algorithmLength = take(1)?.first,
                  let algorithmText = take(Int(algorithmLength)),
                  let algorithm = WrappingAlgorithm(rawValue: String(decoding: algorithmText, as: UTF8.self)),
                  let time = take(8) else { return nil }
            let seconds = time.reduce(0) { $0 << 8 | Int64($1) }
            return (String(decoding: id, as: UTF8.self), algorithm, Date(timeIntervalSince1970: TimeInterval(seconds)),
                    SecretBytes(copying: bytes[index...]))
        }
        guard let parsed else { return nil }
        (keyID, algorithm, validTo, wrappingKey) = parsed
    }
}

extension WrappingAlgorithm {
    var oaepDigest: AsymmetricKey.Digest? {
        switch self {
        case .rsaesOAEPSHA1, .rsaAESKeyWrapSHA1: return .sha1
        case .rsaesOAEPSHA256, .rsaAESKeyWrapSHA256: return .sha256
        case .rsaesPKCS1, .sm2PKE: return nil
        }
    }
}

extension KMSEngine {
    /// Gives the versions of a symmetric key whose material is here a KeyMaterialId, if they have
    /// none yet (keys made before IDs existed; AWS_KMS keys' new versions get theirs when made).
    static func identifyMaterial(_ record: inout KeyRecord, _ material: [UInt32: KeyMaterial], fingerprintKey: SecretBytes) throws {
        guard record.spec == .symmetricDefault else { return }
        for index in record.versions.indices where record.versions[index].materialID == nil {
            guard let bytes = try material[record.versions[index].version]?.storedBytes() else { continue }
            record.versions[index].materialID = try materialFingerprint(bytes, keyID: record.keyID, key: fingerprintKey)
        }
    }
}
