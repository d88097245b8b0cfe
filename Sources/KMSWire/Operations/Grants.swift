import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// CreateGrant.
    static let createGrant: Operation = { m, caller, engine in
        var request = CreateGrantRequest(keyID: try m.requiredString("KeyId"), granteePrincipal: try m.requiredString("GranteePrincipal"),
                                         operations: try m.stringList("Operations") ?? { throw Members.missing("Operations") }())
        request.retiringPrincipal = try m.string("RetiringPrincipal")
        request.name = try m.string("Name")
        if let constraints = try m.object("Constraints") { request.constraints = try grantConstraints(constraints) }
        try m.grantTokens()
        let caller = try m.dryRun(caller)
        try m.finish()
        let r = try engine.createGrant(request, caller: caller)
        return .object([("GrantToken", .string(r.grantToken)), ("GrantId", .string(r.grantID))])
    }

    /// ListGrants.
    static let listGrants: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), limit = try m.int("Limit"), marker = try m.string("Marker")
        let grantID = try m.string("GrantId"), grantee = try m.string("GranteePrincipal")
        try m.finish()
        let page = try engine.listGrants(keyID: keyID, grantID: grantID, granteePrincipal: grantee, limit: limit, marker: marker, caller: caller)
        return .page("Grants", page.grants.map(grantEntry), nextMarker: page.nextMarker)
    }

    /// ListRetirableGrants.
    static let listRetirableGrants: Operation = { m, caller, engine in
        let principal = try m.requiredString("RetiringPrincipal"), limit = try m.int("Limit"), marker = try m.string("Marker")
        try m.finish()
        let page = try engine.listRetirableGrants(retiringPrincipal: principal, limit: limit, marker: marker, caller: caller)
        return .page("Grants", page.grants.map(grantEntry), nextMarker: page.nextMarker)
    }

    /// RetireGrant.
    static let retireGrant: Operation = { m, caller, engine in
        let token = try m.string("GrantToken"), keyID = try m.string("KeyId"), grantID = try m.string("GrantId")
        let caller = try m.dryRun(caller)
        try m.finish()
        try engine.retireGrant(grantToken: token, keyID: keyID, grantID: grantID, caller: caller)
        return .empty
    }

    /// RevokeGrant.
    static let revokeGrant: Operation = { m, caller, engine in
        let keyID = try m.requiredString("KeyId"), grantID = try m.requiredString("GrantId")
        let caller = try m.dryRun(caller)
        try m.finish()
        try engine.revokeGrant(keyID: keyID, grantID: grantID, caller: caller)
        return .empty
    }

    static func grantConstraints(_ members: [(String, JSONValue)]) throws(WireError) -> GrantConstraints {
        var constraints = GrantConstraints()
        for (name, value) in members {
            guard case let .object(pairs) = value else { throw .serialization("Constraints.\(name) must be an object of strings") }
            var context: EncryptionContext = [:]
            for (key, member) in pairs {
                guard case let .string(text) = member else { throw .serialization("Constraints.\(name).\(key) must be a string") }
                context[key] = text
            }
            switch name {
            case "EncryptionContextEquals": constraints.encryptionContextEquals = context
            case "EncryptionContextSubset": constraints.encryptionContextSubset = context
            default: throw .serialization("Constraints does not take '\(name)'")
            }
        }
        return constraints
    }

    static func grantEntry(_ grant: GrantRecord) -> JSONValue {
        var members: [(String, JSONValue)] = [("KeyId", .string(grant.keyARN)), ("GrantId", .string(grant.grantID))]
        if let name = grant.name { members.append(("Name", .string(name))) }
        members += [("CreationDate", .date(grant.creationDate)), ("GranteePrincipal", .string(grant.granteePrincipal))]
        if let retiring = grant.retiringPrincipal { members.append(("RetiringPrincipal", .string(retiring))) }
        members += [("IssuingAccount", .string("arn:aws:iam::\(grant.issuingAccount):root")),
                    ("Operations", .array(grant.operations.map { .string($0) }))]
        if let constraints = grant.constraints {
            var parts: [(String, JSONValue)] = []
            if let equals = constraints.encryptionContextEquals {
                parts.append(("EncryptionContextEquals", .stringMap(equals)))
            }
            if let subset = constraints.encryptionContextSubset {
                parts.append(("EncryptionContextSubset", .stringMap(subset)))
            }
            members.append(("Constraints", .object(parts)))
        }
        return .object(members)
    }
}
