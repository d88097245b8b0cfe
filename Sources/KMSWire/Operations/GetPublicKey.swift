import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GetPublicKey.
    static let getPublicKey: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.grantTokens()
        try m.finish()
        let r = try engine.getPublicKey(keyID: keyID, caller: caller)
        var members: [(String, JSONValue)] = [
            ("KeyId", .string(r.keyId)), ("PublicKey", .blob(r.publicKey)), ("CustomerMasterKeySpec", .string(r.keySpec.rawValue)),
            ("KeySpec", .string(r.keySpec.rawValue)), ("KeyUsage", .string(r.keyUsage.rawValue)),
        ]
        members += JSONValue.algorithmLists(encryption: r.encryptionAlgorithms, signing: r.signingAlgorithms, mac: [],
                                            keyAgreement: r.keyAgreementAlgorithms)
        return .object(members)
    }

    /// DeriveSharedSecret.
    static let deriveSharedSecret: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        guard let algorithm = try m.enumeration("KeyAgreementAlgorithm", KeyAgreementAlgorithm.self) else {
            throw Members.missing("KeyAgreementAlgorithm")
        }
        let publicKey = try m.requiredBlob("PublicKey")
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.deriveSharedSecret(keyID: keyID, keyAgreementAlgorithm: algorithm, publicKey: publicKey, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("SharedSecret", .secret(r.sharedSecret)),
                        ("KeyAgreementAlgorithm", .string(r.keyAgreementAlgorithm.rawValue)), ("KeyOrigin", .string(r.keyOrigin.rawValue))])
    }
}
