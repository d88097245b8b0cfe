import Foundation
import KMSFSCrypto

public struct CreateKeyRequest: Sendable {
    public var description: String = ""
    public var keyUsage: KeyUsage = .encryptDecrypt
    public var keySpec: KeySpec = .symmetricDefault
    public var origin: Origin = .awsKMS
    public var policy: String?
    public var tags: [Tag] = []
    public var multiRegion: Bool = false
    /// Skips the lockout check on `policy` (AWS's BypassPolicyLockoutSafetyCheck).
    public var bypassPolicyLockoutSafetyCheck: Bool = false
    /// A custom key store to make the key in (origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE).
    public var customKeyStoreID: String?
    /// The external key that backs the new key (origin EXTERNAL_KEY_STORE).
    public var xksKeyID: String?
    public init() {}
}

public struct CreateKeyResponse: Sendable { public var keyMetadata: KeyMetadata }

extension KMSEngine {
    /// CreateKey: a new customer-managed key of any implemented spec (KeySpecs.swift): origin
    /// AWS_KMS makes fresh material, origin EXTERNAL starts PendingImport (ImportKeyMaterial).
    public func createKey(_ request: CreateKeyRequest, caller: Caller) throws -> CreateKeyResponse {
        var conditions = Self.requestTags(request.tags)
        conditions["kms:keyspec"] = [request.keySpec.rawValue]
        conditions["kms:keyusage"] = [request.keyUsage.rawValue]
        conditions["kms:keyorigin"] = [request.origin.rawValue]
        conditions["kms:multiregion"] = [String(request.multiRegion)]
        conditions["kms:bypasspolicylockoutsafetycheck"] = [String(request.bypassPolicyLockoutSafetyCheck)]
        // A key pair (an RSA_4096 one takes up to a second) is made before the management lock,
        // which every change waits for — and only for a caller the decision would let in.
        var prepared: KeyMaterial?
        if request.origin == .awsKMS, request.keySpec.asymmetricKind != nil, request.keySpec.usages.contains(request.keyUsage),
           decide(.createKey, caller, target: .account(caller.account), extra: conditions, in: state.withLock { $0 }).allowed {
            prepared = try KeyMaterial.generate(request.keySpec)
        }
        // A key made in a token for a CreateKey that then fails (its commit) is destroyed again;
        // so is one made for a draft that another instance's change made stale (a shared
        // store drafts the change again, with a new key ID): only the committed one stays.
        var madeInToken: [(store: String, label: String)] = []
        do {
            let response = try manage(.createKey, caller) { record, state in
                try authorizeAccount(.createKey, caller, extra: conditions, in: state, record: &record)
                let custom = try request.customKeyStoreID.map { try customKeyStore($0, caller, in: state).record }
                let key = try makeKey(request, caller: caller, manager: .customer, service: nil, generated: prepared, customStore: custom)
                record.keyARN = key.record.arn
                if request.policy != nil {
                    try checkKeyPolicy(key, caller: caller, bypassLockoutCheck: request.bypassPolicyLockoutSafetyCheck, in: state)
                }
                // Last, once everything else has been checked: the material in the store.
                if let custom {
                    try makeCustomKey(key.record, in: custom, state: state, record: record)
                    if custom.type == .awsCloudHSM { madeInToken.append((custom.id, key.record.keyID)) }
                }
                state.keys[key.record.identity] = key
                return (CreateKeyResponse(keyMetadata: metadata(of: key, in: state)), try storeChanges(for: key))
            }
            for (store, label) in madeInToken.dropLast() { try? keyStoreConnections.connection(store)?.deleteKey(label: label) }
            return response
        } catch {
            for (store, label) in madeInToken { try? keyStoreConnections.connection(store)?.deleteKey(label: label) }
            throw error
        }
    }

    /// Builds a new key (record and material) from a request, after validating it. Seeding
    /// gives the key ID and, for an EXTERNAL key, the material (enabled at once, as after an import).
    func makeKey(_ request: CreateKeyRequest, caller: Caller, manager: KeyManager, service: String?,
                 keyID givenID: String? = nil, material givenMaterial: SecretBytes? = nil, generated: KeyMaterial? = nil,
                 customStore: CustomKeyStoreRecord? = nil) throws -> LiveKey {
        try Validate.length(request.description, "description", 0...8192)
        try Validate.tags(request.tags)
        try Self.checkCustomKeyStoreOrigin(request, customStore)
        guard request.keySpec.usages.contains(request.keyUsage) else {
            throw KMSError(.validation, "KeyUsage \(request.keyUsage.rawValue) is not compatible with KeySpec \(request.keySpec.rawValue); "
                           + "it takes \(request.keySpec.usages.map(\.rawValue).joined(separator: " or "))")
        }
        guard request.keySpec.isImplemented else {
            throw KMSError(.unsupportedOperation, "KeySpec \(request.keySpec.rawValue) is not supported by this key service "
                           + "(its ML-DSA library, swift-crypto, has ML-DSA-65 and ML-DSA-87 only)")
        }
        if request.keySpec.mlDSALevel != nil, request.origin == .external {
            throw KMSError(.unsupportedOperation, "Imported key material for \(request.keySpec.rawValue) keys is not supported by this key service")
        }
        guard !request.multiRegion || (customStore == nil && manager == .customer) else {
            throw KMSError(.unsupportedOperation, "A multi-Region key cannot be in a custom key store")
        }
        // AWS makes an EXTERNAL replica PendingImport, its material imported per Region; that
        // per-copy material (its own expiry, its own imports) is not served here yet.
        guard !request.multiRegion || request.origin == .awsKMS else {
            throw KMSError(.unsupportedOperation, "Multi-Region keys with imported key material (Origin EXTERNAL) are not supported by this key service")
        }
        let policyText = request.policy ?? (manager == .aws && service != nil
            ? KeyPolicies.awsManagedPolicy(account: caller.account, service: service!) : KeyPolicies.defaultPolicy(account: caller.account))
        let policy = try KeyPolicies.parsed(policyText)
        let now = clock.now()
        // Once per CreateKey: the open(2) of Foundation's UUID does not matter here.
        let keyID = givenID ?? (request.multiRegion ? Self.multiRegionKeyID() : UUID().uuidString.lowercased())
        precondition(givenMaterial == nil || request.origin == .external, "given material makes an EXTERNAL key")
        let awaitingImport = request.origin == .external && givenMaterial == nil
        var record = KeyRecord(
            keyID: keyID, account: caller.account, region: caller.region, description: request.description,
            state: awaitingImport ? .pendingImport : .enabled, usage: request.keyUsage, spec: request.keySpec,
            origin: request.origin, manager: manager, creationDate: now, deletionDate: nil, pendingWindowInDays: nil,
            policy: policyText, multiRegion: request.multiRegion, primaryRegion: request.multiRegion ? caller.region : nil, tags: request.tags,
            rotationEnabled: false, rotationPeriodInDays: nil, nextRotationDate: nil,
            versions: awaitingImport ? [] : [KeyVersion(version: 1, creationDate: now, rotationType: nil)], service: service)
        var material: [UInt32: KeyMaterial] = [:]
        if let customStore {
            // The material is the store's, made or found by makeCustomKey; an external key
            // store's keys also have kmsd's own, which seals first (double encryption, as AWS).
            record.customKeyStoreID = customStore.id
            record.xksKeyID = request.xksKeyID
            if customStore.type == .externalKeyStore { material[1] = try KeyMaterial.generate(.symmetricDefault) }
        } else if let givenMaterial {
            material[1] = try KeyMaterial(spec: request.keySpec, bytes: givenMaterial)
            record.versions[0].materialID = try materialFingerprint(givenMaterial, keyID: keyID)
            record.versions[0].expirationModel = .doesNotExpire
        } else if !awaitingImport {
            material[1] = try generated ?? KeyMaterial.generate(request.keySpec)
            try Self.identifyMaterial(&record, material, fingerprintKey: keys.withLock { $0.fingerprint })
        }
        return LiveKey(record: record, material: material, policy: policy)
    }

    /// The store changes that persist a new key: its row and its sealed material.
    func storeChanges(for key: LiveKey) throws -> [StoreChange] {
        var changes: [StoreChange] = [.putKey(key.record)]
        for version in key.record.versions {
            guard let material = key.material[version.version] else { continue }
            changes.append(.putMaterial(key.record.identity, version: version.version,
                                        sealed: try rootKey.seal(material.storedBytes(), label: key.record.identity.materialLabel, version: version.version)))
        }
        return changes
    }
}

extension KMSEngine {
    /// AWS's rules for Origin, CustomKeyStoreId and XksKeyId together.
    static func checkCustomKeyStoreOrigin(_ request: CreateKeyRequest, _ store: CustomKeyStoreRecord?) throws(KMSError) {
        switch request.origin {
        case .awsKMS, .external:
            guard request.customKeyStoreID == nil else {
                throw KMSError(.validation, "CustomKeyStoreId needs Origin AWS_CLOUDHSM or EXTERNAL_KEY_STORE, not \(request.origin.rawValue)")
            }
        case .awsCloudHSM, .externalKeyStore:
            guard let store else {
                throw KMSError(.validation, "Origin \(request.origin.rawValue) needs a CustomKeyStoreId")
            }
            let expected: Origin = store.type == .awsCloudHSM ? .awsCloudHSM : .externalKeyStore
            guard request.origin == expected else {
                throw KMSError(.validation, "Custom key store \(store.id) is of type \(store.type.rawValue): its keys have Origin \(expected.rawValue)")
            }
            guard request.keySpec == .symmetricDefault, request.keyUsage == .encryptDecrypt, !request.multiRegion else {
                throw KMSError(.unsupportedOperation, "A key in a custom key store is a single-Region SYMMETRIC_DEFAULT key for ENCRYPT_DECRYPT")
            }
        }
        if let xks = request.xksKeyID {
            guard request.origin == .externalKeyStore else { throw KMSError(.validation, "XksKeyId needs Origin EXTERNAL_KEY_STORE") }
            guard (1...128).contains(xks.count), xks.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) else {
                throw KMSError.constraint(xks, member: "xksKeyId", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9-_.]+$")
            }
        } else if request.origin == .externalKeyStore {
            throw KMSError(.validation, "Origin EXTERNAL_KEY_STORE needs an XksKeyId")
        }
    }

    /// Makes the key's material inside its custom key store (a token), or checks that the
    /// external key it names is usable (a proxy's GetKeyMetadata).
    func makeCustomKey(_ key: KeyRecord, in store: CustomKeyStoreRecord, state: EngineState, record: AuditRecord) throws {
        guard let connection = keyStoreConnections.connection(store.id) else {
            throw KMSError(.customKeyStoreInvalidState, "Custom key store \(store.id) is \(connectionState(store).rawValue), not CONNECTED")
        }
        let call = ExternalCall(principal: record.principal, keyARN: nil, operation: "CreateKey", requestID: record.requestID)
        do {
            if let xks = key.xksKeyID {
                if let other = state.keys.values.first(where: { $0.record.customKeyStoreID == store.id && $0.record.xksKeyID == xks }) {
                    throw KMSError(.xksKeyAlreadyInUse, "External key \(xks) already backs \(other.record.arn)")
                }
                try connection.checkKey(label: xks, call: call)
            } else {
                try connection.createKey(label: key.keyID, call: call)
            }
        } catch let failure as CustomKeyStoreFailure {
            switch failure.kind {
            case .keyNotFound: throw KMSError(.xksKeyNotFound, "The external key store proxy has no key \(key.xksKeyID ?? key.keyID)")
            case .keyInvalidConfiguration:
                throw KMSError(.xksKeyInvalidConfiguration, "External key \(key.xksKeyID ?? key.keyID) is not an enabled AES_256 key for ENCRYPT and DECRYPT")
            default: throw KMSError(.customKeyStoreInvalidState, "Custom key store \(store.id) could not make the key (it did not answer, or refused)")
            }
        }
    }
}
