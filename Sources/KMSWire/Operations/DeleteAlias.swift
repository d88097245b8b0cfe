import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DeleteAlias.
    static let deleteAlias: Operation = { m, caller, engine in
        let name = try m.requiredString("AliasName")
        try m.finish()
        try engine.deleteAlias(aliasName: name, caller: caller)
        return .empty
    }
}
