import KMSFSCrypto

extension KMSEngine {
    /// The number of on-demand rotations AWS allows per key.
    static let maximumOnDemandRotations = 25

    /// RotateKeyOnDemand: a new backing key now — made here, or for an EXTERNAL key the material
    /// imported for it (ImportType NEW_KEY_MATERIAL); returns the key ID (as AWS's documented
    /// answer shows it, not the ARN). At most 25 per key.
    public func rotateKeyOnDemand(keyID: String, caller: Caller) throws -> String {
        try manage(.rotateKeyOnDemand, caller) { record, state in
            let key = try managedKey(keyID, action: .rotateKeyOnDemand, for: caller, in: state, record: &record)
            try Self.requireRotatable(key.record, onDemand: true)
            guard key.record.onDemandRotations < Self.maximumOnDemandRotations else {
                throw KMSError(.limitExceeded, "\(key.record.arn) has reached the limit of \(Self.maximumOnDemandRotations) on-demand rotations")
            }
            if key.record.origin == .external {
                guard var pending = key.record.pendingRotation, key.material[pending.version] != nil else {
                    throw KMSError(.validation, "\(key.record.arn) has no imported key material pending rotation: import new key material (ImportType NEW_KEY_MATERIAL) first")
                }
                pending.rotationType = .onDemand
                pending.creationDate = clock.now()
                let rotated = key.with {
                    $0.versions.append(pending)
                    $0.pendingRotation = nil
                }
                state.keys[rotated.record.identity] = rotated
                record.note = "imported key material \(pending.materialID ?? "?") is current"
                return (rotated.record.keyID, [.putKey(rotated.record)] + (try propagateShared(from: rotated, in: &state)))
            }
            let (rotated, changes) = try rotated(key, type: .onDemand)
            state.keys[rotated.record.identity] = rotated
            return (rotated.record.keyID, changes + (try propagateShared(from: rotated, in: &state)))
        }
    }

    /// `key` with one more backing key, which becomes current, and the changes that store it.
    func rotated(_ key: LiveKey, type: RotationType) throws -> (LiveKey, [StoreChange]) {
        let current = key.record.currentVersion?.version ?? 0
        guard current < UInt32.max else { throw KMSError(.limitExceeded, "\(key.record.arn) has no version number left to rotate to") }
        let version = current + 1
        let material = try KeyMaterial.generate(key.record.spec)
        var record = key.record
        record.versions.append(KeyVersion(version: version, creationDate: clock.now(), rotationType: type,
                                          materialID: try materialFingerprint(material.storedBytes(), keyID: record.keyID)))
        var versions = key.material
        versions[version] = material
        let sealed = try rootKey.seal(material.storedBytes(), label: record.identity.materialLabel, version: version)
        return (LiveKey(record: record, material: versions, policy: key.policy),
                [.putKey(record), .putMaterial(record.identity, version: version, sealed: sealed)])
    }
}
