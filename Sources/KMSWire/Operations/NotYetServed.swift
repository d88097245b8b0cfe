import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ReplicateKey and UpdatePrimaryRegion.
    static func multiRegionChange(_ operation: KMSOperation) -> Operation {
        { m, caller, engine in
            let keyID = try m.requiredString("KeyId")
            m.accept(["ReplicaRegion", "PrimaryRegion", "Policy", "BypassPolicyLockoutSafetyCheck", "Description", "Tags"])
            try m.finish()
            try engine.multiRegionChange(operation, keyID: keyID, caller: caller)
        }
    }
}
