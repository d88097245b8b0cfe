import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GetKeyPolicy.
    static let getKeyPolicy: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), name = try m.string("PolicyName") ?? "default"
        try m.finish()
        return .object([("Policy", .string(try engine.getKeyPolicy(keyID: keyID, policyName: name, caller: caller))), ("PolicyName", .string(name))])
    }
}
