import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateMac.
    static let generateMac: Operation = { m, caller, engine in
        let (keyID, message, algorithm) = try macMembers(&m)
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.generateMac(keyID: keyID, message: message, macAlgorithm: algorithm, caller: caller)
        return .object([("Mac", .blob(r.mac)), ("MacAlgorithm", .string(r.macAlgorithm.rawValue)), ("KeyId", .string(r.keyId))])
    }

    /// VerifyMac.
    static let verifyMac: Operation = { m, caller, engine in
        let (keyID, message, algorithm) = try macMembers(&m)
        let mac = try m.requiredBlob("Mac")
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.verifyMac(keyID: keyID, message: message, mac: mac, macAlgorithm: algorithm, caller: caller)
        return .object([("KeyId", .string(r.keyId)), ("MacValid", .bool(true)), ("MacAlgorithm", .string(r.macAlgorithm.rawValue))])
    }

    /// The members GenerateMac and VerifyMac share.
    static func macMembers(_ m: inout Members) throws -> (String, [UInt8], MacAlgorithm) {
        let keyID = try m.requiredString("KeyId")
        let message = try m.requiredBlob("Message")
        guard let algorithm = try m.enumeration("MacAlgorithm", MacAlgorithm.self) else { throw Members.missing("MacAlgorithm") }
        try m.grantTokens()
        return (keyID, message, algorithm)
    }
}
