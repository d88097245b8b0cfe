import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DescribeKey.
    static let describeKey: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.grantTokens()
        try m.finish()
        return .object([("KeyMetadata", .keyMetadata(try engine.describeKey(keyID: keyID, caller: caller).keyMetadata))])
    }
}
