import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// UpdateAlias.
    static let updateAlias: Operation = { m, caller, engine in
        let name = try m.requiredString("AliasName"), target = try m.requiredString("TargetKeyId")
        try m.finish()
        try engine.updateAlias(aliasName: name, targetKeyID: target, caller: caller)
        return .empty
    }
}
