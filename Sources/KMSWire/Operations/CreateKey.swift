import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// CreateKey.
    static let createKey: Operation = { m, caller, engine in
        var request = CreateKeyRequest()
        request.description = try m.string("Description") ?? ""
        request.keyUsage = try m.enumeration("KeyUsage", KeyUsage.self) ?? .encryptDecrypt
        let spec = try m.enumeration("KeySpec", KeySpec.self)
        let legacySpec = try m.enumeration("CustomerMasterKeySpec", KeySpec.self)
        request.keySpec = spec ?? legacySpec ?? .symmetricDefault
        request.origin = try m.enumeration("Origin", Origin.self) ?? .awsKMS
        request.policy = try m.string("Policy")
        request.tags = try m.tags("Tags") ?? []
        request.multiRegion = try m.bool("MultiRegion") ?? false
        request.bypassPolicyLockoutSafetyCheck = try m.bool("BypassPolicyLockoutSafetyCheck") ?? false
        request.customKeyStoreID = try m.string("CustomKeyStoreId")
        request.xksKeyID = try m.string("XksKeyId")
        try m.finish()
        return .object([("KeyMetadata", .keyMetadata(try engine.createKey(request, caller: caller).keyMetadata))])
    }
}
