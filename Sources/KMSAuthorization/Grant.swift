/// A grant as the evaluator sees it: a key's permission given to one principal for some
/// actions, optionally only with an encryption context that equals or includes given pairs.
public struct Grant: Sendable, Equatable {
    public var id: String
    /// The grantee's ARN; a role's ARN covers its assumed-role sessions.
    public var grantee: String
    /// Actions (`kms:Decrypt`, ...).
    public var actions: Set<String>
    public var contextEquals: [String: String]?
    public var contextSubset: [String: String]?

    public init(id: String, grantee: String, actions: Set<String>, contextEquals: [String: String]? = nil,
                contextSubset: [String: String]? = nil) {
        self.id = id
        self.grantee = grantee
        self.actions = actions
        self.contextEquals = contextEquals
        self.contextSubset = contextSubset
    }

    /// Whether the grant allows `request`. `context` is the operation's encryption context, nil
    /// for an operation that takes none: AWS applies constraints only to operations that take
    /// one (not to DescribeKey, RetireGrant or CreateGrant).
    public func allows(_ request: AuthorizationRequest, context: [String: String]?) -> Bool {
        guard grantee == request.principal.arn || (request.principal.roleARN != nil && grantee == request.principal.roleARN),
              actions.contains(request.action)
        else { return false }
        guard let context else { return true }
        if let equals = contextEquals, equals != context { return false }
        if let subset = contextSubset, !subset.allSatisfy({ context[$0.key] == $0.value }) { return false }
        return true
    }
}
