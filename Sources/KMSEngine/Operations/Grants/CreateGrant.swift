import Foundation
import KMSFSCrypto

public struct CreateGrantRequest: Sendable {
    public var keyID: String
    public var granteePrincipal: String
    public var retiringPrincipal: String?
    public var operations: [String]
    public var constraints: GrantConstraints?
    public var name: String?

    public init(keyID: String, granteePrincipal: String, operations: [String]) {
        self.keyID = keyID
        self.granteePrincipal = granteePrincipal
        self.operations = operations
    }
}

public struct CreateGrantResponse: Sendable {
    public var grantID: String
    public var grantToken: String
}

extension KMSEngine {
    /// Grants per key, as AWS's quota.
    static let maximumGrantsPerKey = 50_000

    /// CreateGrant: lets `granteePrincipal` run `operations` on the key, optionally only with an
    /// encryption context that equals or includes the constraint's. Usable at once (this service
    /// is consistent; the returned grant token is accepted wherever AWS takes one). A retry with
    /// the same name and the same grant returns the existing grant.
    public func createGrant(_ request: CreateGrantRequest, caller: Caller) throws -> CreateGrantResponse {
        try manage(.createGrant, caller) { record, state in
            let operations = try Self.grantOperations(request.operations)
            try Validate.length(request.granteePrincipal, "granteePrincipal", 1...256)
            try Self.validatePrincipal(request.granteePrincipal, member: "GranteePrincipal")
            if let retiring = request.retiringPrincipal {
                try Validate.length(retiring, "retiringPrincipal", 1...256)
                try Self.validatePrincipal(retiring, member: "RetiringPrincipal")
            }
            if let name = request.name {
                try Validate.length(name, "name", 1...256)
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || ":/_-".contains($0) }) else {
                    throw KMSError.constraint(name, member: "name", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")
                }
            }
            for context in [request.constraints?.encryptionContextEquals, request.constraints?.encryptionContextSubset].compactMap({ $0 }) {
                try Validate.encryptionContext(context)
            }
            var conditions: [String: [String]] = [
                "kms:grantoperations": operations, "kms:granteeprincipal": [request.granteePrincipal],
                "kms:grantisforawsresource": [String(caller.isViaTrustedService)],
            ]
            if let retiring = request.retiringPrincipal { conditions["kms:retiringprincipal"] = [retiring] }
            if let types = request.constraints?.typeNames, !types.isEmpty { conditions["kms:grantconstrainttype"] = types }
            let key = try resolve(request.keyID, for: caller, allowAlias: false, action: .createGrant, in: state)
            record.keyARN = key.record.arn
            let decision = try authorize(.createGrant, caller, key: key, extra: conditions, in: state, record: &record)
            // A grant that allows CreateGrant allows only grants narrower than itself.
            if let parentID = decision.grantID, let parent = state.grants[key.record.identity]?[parentID] {
                guard Set(operations).isSubset(of: parent.operations), parent.constraints == nil || parent.constraints == request.constraints else {
                    throw KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: kms:CreateGrant on resource: \(key.record.arn): grant \(parent.grantID) allows only grants of its own operations and constraints")
                }
            }
            switch key.record.state {
            case .enabled, .disabled, .pendingImport: break
            default: throw KMSError(.invalidState, "\(key.record.arn) is \(key.record.state.rawValue).")
            }
            try Self.endDryRun(caller)
            var grants = state.grants[key.record.identity] ?? [:]
            if let name = request.name, let existing = grants.values.first(where: {
                $0.name == name && $0.granteePrincipal == request.granteePrincipal && $0.retiringPrincipal == request.retiringPrincipal
                    && Set($0.operations) == Set(operations) && $0.constraints == request.constraints
            }) {
                record.note = "grant \(existing.grantID) (existing, same name)"
                return (CreateGrantResponse(grantID: existing.grantID, grantToken: existing.token), [])
            }
            guard grants.count < Self.maximumGrantsPerKey else {
                throw KMSError(.limitExceeded, "\(key.record.arn) has \(Self.maximumGrantsPerKey) grants, the most a key can have")
            }
            let grant = GrantRecord(
                grantID: try Self.randomHex(bytes: 32), keyID: key.record.keyID, keyARN: key.record.arn, name: request.name,
                granteePrincipal: request.granteePrincipal, granteeID: state.identities[request.granteePrincipal]?.record.id,
                retiringPrincipal: request.retiringPrincipal,
                issuingPrincipal: caller.principal, issuingAccount: key.record.account, operations: operations,
                constraints: request.constraints, creationDate: clock.now(), token: try Self.grantToken())
            grants[grant.grantID] = grant
            state.grants[key.record.identity] = grants
            record.note = "grant \(grant.grantID) to \(grant.granteePrincipal): \(operations.joined(separator: ","))"
            return (CreateGrantResponse(grantID: grant.grantID, grantToken: grant.token), [.putGrant(grant)])
        }
    }

    /// Operation names, each a grantable one, without duplicates, in the order given.
    static func grantOperations(_ names: [String]) throws(KMSError) -> [String] {
        guard !names.isEmpty else { throw KMSError.constraint("[]", member: "operations", "Member must have length greater than or equal to 1") }
        var seen = Set<String>()
        var result: [String] = []
        for name in names {
            guard KMSAction.grantable[name] != nil else {
                throw KMSError.constraint("[\(names.joined(separator: ", "))]", member: "operations",
                                          "Member must satisfy constraint: [Member must satisfy enum value set: [\(KMSAction.grantable.keys.sorted().joined(separator: ", "))]]")
            }
            if seen.insert(name).inserted { result.append(name) }
        }
        return result
    }

    /// A grantee or retiring principal: an IAM or STS ARN (account root, user, role, assumed-role
    /// session) or an AWS service principal, printable, without spaces. Whether it exists is
    /// not asked: a grant to nobody allows nobody (and grants may name principals of accounts
    /// this service does not have).
    static func validatePrincipal(_ principal: String, member: String) throws(KMSError) {
        let isService = principal.hasSuffix(".amazonaws.com") && !principal.contains(":")
        let printable = principal.unicodeScalars.allSatisfy { $0.value > 0x20 && $0.value < 0x7f }
        guard printable, isService || principal.hasPrefix("arn:aws:iam::") || principal.hasPrefix("arn:aws:sts::") else {
            throw KMSError(.invalidArn, "\(member) \(principal.prefix(256)) is not a valid principal ARN")
        }
    }

    static func randomHex(bytes: Int) throws -> String {
        try SecureRandom.bytes(count: bytes).map { String(format: "%02x", $0) }.joined()
    }

    /// A grant token: opaque, URL-safe, 256 random bits behind a prefix that tells ours apart.
    static func grantToken() throws -> String {
        grantTokenPrefix + Data(try SecureRandom.bytes(count: 32)).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    static let grantTokenPrefix = "kmsd-grant-1."
}
