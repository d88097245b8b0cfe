extension KMSEngine {
    /// DisableKeyRotation: no more automatic rotations; existing versions stay.
    public func disableKeyRotation(keyID: String, caller: Caller) throws {
        try updateKey(.disableKeyRotation, keyID: keyID, caller: caller) { key in
            try Self.requireRotatable(key)
            key.rotationEnabled = false
            key.nextRotationDate = nil
        }
    }
}
