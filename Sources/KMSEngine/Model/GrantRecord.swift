import Foundation
import KMSAuthorization

/// A grant: a key's permission given to one principal for some operations, with optional
/// encryption-context constraints — usable at once, and removable by retiring or revoking.
public struct GrantRecord: Codable, Sendable, Equatable {
    public var grantID: String
    public var keyID: String
    public var keyARN: String
    public var name: String?
    public var granteePrincipal: String
    /// The unique ID (`AIDA…`, `AROA…`) of the user or role the grantee ARN named when the grant
    /// was made: a user deleted and made again under the same name is another principal, and
    /// does not inherit the grant (AWS binds grants to the principal, not its name).
    public var granteeID: String?
    public var retiringPrincipal: String?
    /// The principal that created the grant.
    public var issuingPrincipal: String
    /// The account of the key (where the grant lives).
    public var issuingAccount: String
    /// Operation names (`Decrypt`, `GenerateDataKey`, ...), each one of ``KMSAction/grantable``.
    public var operations: [String]
    public var constraints: GrantConstraints?
    public var creationDate: Date
    /// The grant token CreateGrant returned: names this grant in later calls' `GrantTokens`.
    public var token: String

    /// Whether the grantee is still the principal the grant was made to.
    func granteeIsCurrent(in state: EngineState) -> Bool {
        guard let granteeID else { return true }
        return state.identities[granteePrincipal]?.record.id == granteeID
    }

    /// The grant as the evaluator sees it.
    var grant: Grant {
        Grant(id: grantID, grantee: granteePrincipal, actions: Set(operations.map { "kms:" + $0 }),
              contextEquals: constraints?.encryptionContextEquals, contextSubset: constraints?.encryptionContextSubset)
    }
}

/// CreateGrant's `Constraints`: the operation's encryption context must equal, or include, these pairs.
public struct GrantConstraints: Codable, Sendable, Equatable {
    public var encryptionContextEquals: EncryptionContext?
    public var encryptionContextSubset: EncryptionContext?

    public init(encryptionContextEquals: EncryptionContext? = nil, encryptionContextSubset: EncryptionContext? = nil) {
        self.encryptionContextEquals = encryptionContextEquals
        self.encryptionContextSubset = encryptionContextSubset
    }

    /// `kms:GrantConstraintType`.
    var typeNames: [String] {
        (encryptionContextEquals != nil ? ["EncryptionContextEquals"] : []) + (encryptionContextSubset != nil ? ["EncryptionContextSubset"] : [])
    }
}

extension GrantRecord {
    /// The identity of the grant's key, from its ARN.
    var keyIdentity: KeyIdentity? {
        guard case let .keyARN(account, region, keyID)? = try? KeyReference(parsing: keyARN) else { return nil }
        return KeyIdentity(account: account, region: region, keyID: keyID)
    }
}
