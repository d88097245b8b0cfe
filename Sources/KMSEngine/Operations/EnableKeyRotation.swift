extension KMSEngine {
    /// EnableKeyRotation: rotate automatically every 90–2560 days (default 365). Symmetric keys
    /// with AWS_KMS material only.
    public func enableKeyRotation(keyID: String, rotationPeriodInDays: Int? = nil, caller: Caller) throws {
        try updateKey(.enableKeyRotation, keyID: keyID,
                      extra: rotationPeriodInDays.map { ["kms:rotationperiodindays": [String($0)]] } ?? [:], caller: caller) { key in
            let days = rotationPeriodInDays ?? 365
            try Validate.range(days, "rotationPeriodInDays", KeyRecord.rotationPeriods)
            try Self.requireRotatable(key)
            key.rotationEnabled = true
            key.rotationPeriodInDays = days
            key.nextRotationDate = clock.now().addingTimeInterval(Double(days) * 86_400)
        }
    }

    /// Rotation needs an enabled (or disabled-for-automatic-setup) symmetric key with our own material.
    static func requireRotatable(_ key: KeyRecord, onDemand: Bool = false) throws(KMSError) {
        try requirePrimaryForRotation(key)
        guard key.spec == .symmetricDefault, key.origin == .awsKMS || (onDemand && key.origin == .external) else {
            throw KMSError(.unsupportedOperation, "\(key.arn) does not support rotation (spec \(key.spec.rawValue), origin \(key.origin.rawValue))")
        }
        switch key.state {
        case .enabled: return
        case .disabled: throw KMSError(.disabled, "\(key.arn) is disabled.")
        default: throw KMSError(.invalidState, "\(key.arn) is \(key.state.rawValue).")
        }
    }
}
