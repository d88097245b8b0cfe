import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// Sign.
    static let sign: Operation = { m, caller, engine in
        let (keyID, message, type, algorithm) = try signingMembers(&m)
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.sign(keyID: keyID, message: message, messageType: type, signingAlgorithm: algorithm, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("Signature", .blob(r.signature)), ("SigningAlgorithm", .string(r.signingAlgorithm.rawValue))])
    }

    /// Verify.
    static let verify: Operation = { m, caller, engine in
        let (keyID, message, type, algorithm) = try signingMembers(&m)
        let signature = try m.requiredBlob("Signature")
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.verify(keyID: keyID, message: message, messageType: type, signature: signature, signingAlgorithm: algorithm,
                                  caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("SignatureValid", .bool(r.signatureValid)),
                        ("SigningAlgorithm", .string(r.signingAlgorithm.rawValue))])
    }

    /// The members Sign and Verify share.
    static func signingMembers(_ m: inout Members) throws -> (String, [UInt8], MessageType, SigningAlgorithm) {
        let keyID = try m.requiredString("KeyId")
        let message = try m.requiredBlob("Message")
        let type = try m.enumeration("MessageType", MessageType.self) ?? .raw
        guard let algorithm = try m.enumeration("SigningAlgorithm", SigningAlgorithm.self) else { throw Members.missing("SigningAlgorithm") }
        try m.grantTokens()
        return (keyID, message, type, algorithm)
    }
}
