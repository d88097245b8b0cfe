import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateDataKeyPair.
    static let generateDataKeyPair: Operation = { m, caller, engine in
        let (keyID, spec, context, caller) = try dataKeyPairMembers(&m, caller)
        let r = try engine.generateDataKeyPair(keyID: keyID, keyPairSpec: spec, encryptionContext: context, caller: caller)
        return dataKeyPair(r)
    }

    /// GenerateDataKeyPairWithoutPlaintext.
    static let generateDataKeyPairWithoutPlaintext: Operation = { m, caller, engine in
        let (keyID, spec, context, caller) = try dataKeyPairMembers(&m, caller)
        let r = try engine.generateDataKeyPairWithoutPlaintext(keyID: keyID, keyPairSpec: spec, encryptionContext: context, caller: caller)
        return dataKeyPair(r)
    }

    static func dataKeyPairMembers(_ m: inout Members, _ caller: Caller) throws -> (String, DataKeyPairSpec, EncryptionContext, Caller) {
        let keyID = try m.requiredString("KeyId")
        guard let spec = try m.enumeration("KeyPairSpec", DataKeyPairSpec.self) else { throw Members.missing("KeyPairSpec") }
        let context = try m.stringMap("EncryptionContext") ?? [:]
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        return (keyID, spec, context, caller)
    }

    static func dataKeyPair(_ r: GenerateDataKeyPairResponse) -> JSONValue {
        var members: [(String, JSONValue)] = [("PrivateKeyCiphertextBlob", .blob(r.privateKeyCiphertextBlob))]
        if let plaintext = r.privateKeyPlaintext { members.append(("PrivateKeyPlaintext", .secret(plaintext))) }
        members += [("PublicKey", .blob(r.publicKey)), ("KeyId", .string(r.keyId)), ("KeyPairSpec", .string(r.keyPairSpec.rawValue))]
        return .object(members)
    }
}
