import Foundation

/// A grant: a key's permission given to one principal for some operations, with optional
/// encryption-context constraints — usable at once, and removable by retiring or revoking.
public struct GrantRecord: Codable, Sendable, Equatable {
    public var grantID: String
    public var keyID: String
    public var keyARN: String
    public var name: String?
    public var granteePrincipal: String
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

    /// Whether the grant allows `action` for `principal` with this encryption context.
    func allows(_ action: KMSAction, principalARN: String, roleARN: String?, context: EncryptionContext?) -> Bool {
        guard granteePrincipal == principalARN || (roleARN != nil && granteePrincipal == roleARN),
              operations.contains(action.operation)
        else { return false }
        // Constraints bind the operations that take an encryption context; AWS does not apply
        // them to DescribeKey, RetireGrant or CreateGrant.
        guard Self.takesContext(action) else { return true }
        return constraints?.isSatisfied(by: context ?? [:]) ?? true
    }

    static func takesContext(_ action: KMSAction) -> Bool {
        switch action {
        case .encrypt, .decrypt, .generateDataKey, .generateDataKeyWithoutPlaintext, .reEncryptFrom, .reEncryptTo: return true
        default: return false
        }
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

    func isSatisfied(by context: EncryptionContext) -> Bool {
        if let equals = encryptionContextEquals, equals != context { return false }
        if let subset = encryptionContextSubset, !subset.allSatisfy({ context[$0.key] == $0.value }) { return false }
        return true
    }

    /// `kms:GrantConstraintType`.
    var typeNames: [String] {
        (encryptionContextEquals != nil ? ["EncryptionContextEquals"] : []) + (encryptionContextSubset != nil ? ["EncryptionContextSubset"] : [])
    }
}
