import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// ListAliases.
    static let listAliases: Operation = { m, caller, engine in
        let keyID = try m.string("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        try m.finish()
        let page = try engine.listAliases(keyID: keyID, limit: limit, marker: marker, caller: caller)
        return .page("Aliases", page.aliases.map { alias in
            var members: [(String, JSONValue)] = [("AliasName", .string(alias.aliasName)), ("AliasArn", .string(alias.aliasArn))]
            if let target = alias.targetKeyId { members.append(("TargetKeyId", .string(target))) }
            members += [("CreationDate", .date(alias.creationDate)), ("LastUpdatedDate", .date(alias.lastUpdatedDate))]
            return .object(members)
        }, nextMarker: page.nextMarker)
    }
}
