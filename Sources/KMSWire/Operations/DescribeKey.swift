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

extension KMSProtocol {
    /// GetKeyLastUsage.
    static let getKeyLastUsage: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        try m.finish()
        let r = try engine.getKeyLastUsage(keyID: keyID, caller: caller)
        var members: [(String, JSONValue)] = [("KeyId", .string(r.keyId))]
        if let use = r.keyLastUsage {
            members.append(("KeyLastUsage", .object([("Operation", .string(use.operation)), ("Timestamp", .date(use.timestamp)),
                                                      ("KmsRequestId", .string(use.requestID))])))
        }
        members += [("TrackingStartDate", .date(r.trackingStartDate)), ("KeyCreationDate", .date(r.keyCreationDate))]
        return .object(members)
    }
}
