import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ReEncrypt.
    static let reEncrypt: Operation = { m, caller, engine in
        let blob = try m.requiredBlob("CiphertextBlob")
        let sourceContext = try m.stringMap("SourceEncryptionContext") ?? [:]
        let sourceKeyID = try m.string("SourceKeyId")
        let destinationKeyID = try m.requiredString("DestinationKeyId")
        let destinationContext = try m.stringMap("DestinationEncryptionContext") ?? [:]
        let sourceAlgorithm = try m.enumeration("SourceEncryptionAlgorithm", EncryptionAlgorithm.self) ?? .symmetricDefault
        let destinationAlgorithm = try m.enumeration("DestinationEncryptionAlgorithm", EncryptionAlgorithm.self) ?? .symmetricDefault
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.reEncrypt(ciphertextBlob: blob, sourceEncryptionContext: sourceContext, sourceKeyID: sourceKeyID,
                                     destinationKeyID: destinationKeyID, destinationEncryptionContext: destinationContext,
                                     sourceEncryptionAlgorithm: sourceAlgorithm, destinationEncryptionAlgorithm: destinationAlgorithm,
                                     caller: caller)
        return .object([("CiphertextBlob", .blob(r.ciphertextBlob)), ("SourceKeyId", .string(r.sourceKeyId)), ("KeyId", .string(r.keyId)),
                        ("SourceEncryptionAlgorithm", .string(r.sourceEncryptionAlgorithm.rawValue)),
                        ("DestinationEncryptionAlgorithm", .string(r.destinationEncryptionAlgorithm.rawValue))])
    }
}
