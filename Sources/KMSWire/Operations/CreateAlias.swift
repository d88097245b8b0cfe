import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// CreateAlias.
    static let createAlias: Operation = { m, caller, engine in
        let name = try m.requiredString("AliasName"), target = try m.requiredString("TargetKeyId")
        try m.finish()
        try engine.createAlias(aliasName: name, targetKeyID: target, caller: caller)
        return .empty
    }
}
