import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ReplicateKey.
    static let replicateKey: Operation = { m, caller, engine in
        var request = ReplicateKeyRequest(keyID: try m.requiredString("KeyId"), replicaRegion: try m.requiredString("ReplicaRegion"))
        request.policy = try m.string("Policy")
        request.bypassPolicyLockoutSafetyCheck = try m.bool("BypassPolicyLockoutSafetyCheck") ?? false
        request.description = try m.string("Description")
        request.tags = try m.tags("Tags") ?? []
        try m.finish()
        let response = try engine.replicateKey(request, caller: caller)
        return .object([("ReplicaKeyMetadata", .keyMetadata(response.replicaKeyMetadata)), ("ReplicaPolicy", .string(response.replicaPolicy)),
                        ("ReplicaTags", .array(response.replicaTags.map { .object([("TagKey", .string($0.tagKey)), ("TagValue", .string($0.tagValue))]) }))])
    }

    /// UpdatePrimaryRegion.
    static let updatePrimaryRegion: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId")
        let region = try m.requiredString("PrimaryRegion")
        try m.finish()
        try engine.updatePrimaryRegion(keyID: keyID, primaryRegion: region, caller: caller)
        return .object([])
    }
}
