import Foundation

/// An IAM user or role of an account: who a signature proves (users, through their access keys;
/// roles, through the sessions STS issues), with the inline identity policies that say what it may do.
public struct IdentityRecord: Codable, Sendable, Equatable {
    public enum Kind: String, Codable, Sendable { case user, role }

    public var kind: Kind
    public var account: String
    public var name: String
    /// AWS's unique ID: `AIDA…` for users, `AROA…` for roles.
    public var id: String
    public var creationDate: Date
    public var description: String?
    public var tags: [Tag]
    /// Inline identity policies by name, as written.
    public var policies: [String: String]
    /// A role's trust policy: who may assume it (sts:AssumeRole).
    public var trustPolicy: String?
    /// A role's longest session, in seconds (3600 unless set; 900–43200).
    public var maxSessionDuration: Int?

    public var arn: String { Self.arn(kind, account: account, name: name) }

    public static func arn(_ kind: Kind, account: String, name: String) -> String {
        "arn:aws:iam::\(account):\(kind.rawValue)/\(name)"
    }
}

/// A principal as a signature proves it, with what the authorization decision needs to know of it.
public enum PrincipalARN {
    /// The role an assumed-role session ARN (`arn:aws:sts::A:assumed-role/ROLE/SESSION`) belongs to.
    public static func role(ofSession arn: String) -> String? {
        guard arn.hasPrefix("arn:aws:sts::") else { return nil }
        let parts = arn.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[2] == "sts", parts[5].hasPrefix("assumed-role/") else { return nil }
        let path = parts[5].dropFirst("assumed-role/".count).split(separator: "/")
        guard path.count == 2 else { return nil }
        return "arn:aws:iam::\(parts[4]):role/\(path[0])"
    }

    /// The user name of a user ARN (`arn:aws:iam::A:user/NAME`), nil for other principals.
    public static func userName(_ arn: String) -> String? {
        arn.range(of: ":user/").map { String(arn[$0.upperBound...]) }
    }

    /// `aws:PrincipalType`: Account, User or AssumedRole.
    static func type(_ arn: String) -> String {
        if arn.hasSuffix(":root") { return "Account" }
        if arn.contains(":assumed-role/") { return "AssumedRole" }
        return "User"
    }
}
