import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// PutKeyPolicy.
    static let putKeyPolicy: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), policy = try m.requiredString("Policy")
        let name = try m.string("PolicyName") ?? "default"
        let bypass = try m.bool("BypassPolicyLockoutSafetyCheck") ?? false
        try m.finish()
        try engine.putKeyPolicy(keyID: keyID, policyName: name, policy: policy, bypassPolicyLockoutSafetyCheck: bypass, caller: caller)
        return .empty
    }

    /// ListKeyPolicies.
    static let listKeyPolicies: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        try m.finish()
        let page = try engine.listKeyPolicies(keyID: keyID, limit: limit, marker: marker, caller: caller)
        return .page("PolicyNames", page.policyNames.map { .string($0) }, nextMarker: page.nextMarker)
    }
}
