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
    /// A custom key store to make the key in; none exist here yet (CustomKeyStoreNotFoundException).
    public var customKeyStoreID: String?
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
        return try manage(.createKey, caller) { record, state in
            try authorizeAccount(.createKey, caller, extra: conditions, in: state, record: &record)
            let key = try makeKey(request, caller: caller, manager: .customer, service: nil, generated: prepared)
            record.keyARN = key.record.arn
            if request.policy != nil {
                try checkKeyPolicy(key, caller: caller, bypassLockoutCheck: request.bypassPolicyLockoutSafetyCheck, in: state)
            }
            state.keys[key.record.keyID] = key
            return (CreateKeyResponse(keyMetadata: key.record.metadata), try storeChanges(for: key))
        }
    }

    /// Builds a new key (record and material) from a request, after validating it. Seeding
    /// gives the key ID and, for an EXTERNAL key, the material (enabled at once, as after an import).
    func makeKey(_ request: CreateKeyRequest, caller: Caller, manager: KeyManager, service: String?,
                 keyID givenID: String? = nil, material givenMaterial: SecretBytes? = nil, generated: KeyMaterial? = nil) throws -> LiveKey {
        try Validate.length(request.description, "description", 0...8192)
        try Validate.tags(request.tags)
        guard request.tags.count <= 50 else { throw KMSError(.limitExceeded, "A key can have at most 50 tags") }
        if let store = request.customKeyStoreID {
            throw KMSError(.customKeyStoreNotFound, "Custom key store \(store) does not exist")
        }
        guard request.keySpec.usages.contains(request.keyUsage) else {
            throw KMSError(.validation, "KeyUsage \(request.keyUsage.rawValue) is not compatible with KeySpec \(request.keySpec.rawValue); "
                           + "it takes \(request.keySpec.usages.map(\.rawValue).joined(separator: " or "))")
        }
        guard request.keySpec.isImplemented else {
            throw KMSError(.unsupportedOperation, "KeySpec \(request.keySpec.rawValue) is not supported by this key service "
                           + "(SM2 is for AWS's China Regions; ML-DSA needs OpenSSL 3.5, this one is 3.0)")
        }
        guard request.origin == .awsKMS || request.origin == .external else {
            throw KMSError(.unsupportedOperation, "Origin \(request.origin.rawValue) is not supported by this key service")
        }
        guard !request.multiRegion else {
            throw KMSError(.unsupportedOperation, "Multi-Region keys are not supported by this key service yet")
        }
        let policyText = request.policy ?? (manager == .aws && service != nil
            ? KeyPolicies.awsManagedPolicy(account: caller.account, service: service!) : KeyPolicies.defaultPolicy(account: caller.account))
        let policy = try KeyPolicies.parsed(policyText)
        let now = clock.now()
        let keyID = givenID ?? UUID().uuidString.lowercased()  // once per CreateKey: the open(2) of Foundation's UUID does not matter here
        precondition(givenMaterial == nil || request.origin == .external, "given material makes an EXTERNAL key")
        let awaitingImport = request.origin == .external && givenMaterial == nil
        var record = KeyRecord(
            keyID: keyID, account: caller.account, region: caller.region, description: request.description,
            state: awaitingImport ? .pendingImport : .enabled, usage: request.keyUsage, spec: request.keySpec,
            origin: request.origin, manager: manager, creationDate: now, deletionDate: nil, pendingWindowInDays: nil,
            policy: policyText, multiRegion: false, tags: request.tags,
            rotationEnabled: false, rotationPeriodInDays: nil, nextRotationDate: nil,
            versions: awaitingImport ? [] : [KeyVersion(version: 1, creationDate: now, rotationType: nil)], service: service)
        var material: [UInt32: KeyMaterial] = [:]
        if let givenMaterial {
            material[1] = try KeyMaterial(spec: request.keySpec, bytes: givenMaterial)
            record.materialFingerprint = try materialFingerprint(givenMaterial, keyID: keyID)
            record.expirationModel = .doesNotExpire
        } else if !awaitingImport {
            material[1] = try generated ?? KeyMaterial.generate(request.keySpec)
        }
        return LiveKey(record: record, material: material, policy: policy)
    }

    /// The store changes that persist a new key: its row and its sealed material.
    func storeChanges(for key: LiveKey) throws -> [StoreChange] {
        var changes: [StoreChange] = [.putKey(key.record)]
        for version in key.record.versions {
            guard let material = key.material[version.version] else { continue }
            changes.append(.putMaterial(keyID: key.record.keyID, version: version.version,
                                        sealed: try rootKey.seal(material.storedBytes(), label: key.record.keyID, version: version.version)))
        }
        return changes
    }
}
