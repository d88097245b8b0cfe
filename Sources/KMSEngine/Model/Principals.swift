import Foundation

/// An account of the key service: keys, aliases and access keys live in one.
public struct AccountRecord: Codable, Sendable, Equatable {
    public var accountID: String
    public var name: String
    public var creationDate: Date
}

/// An access key: the identity a SigV4 signature proves. The secret is not part of the record;
/// it is sealed under the root key beside it.
public struct AccessKeyRecord: Codable, Sendable, Equatable {
    public var accessKeyID: String
    public var account: String
    /// `arn:aws:iam::<account>:root` or `arn:aws:iam::<account>:user/<name>`.
    public var principal: String
    public var creationDate: Date
    /// `Active` or `Inactive` (IAM's UpdateAccessKey); nil, in records written before, is Active.
    public var status: String?
    /// The sealed secret this record goes with (``SecretBinding``); nil in records written before.
    var secretBinding: String? = nil

    /// What the secret is sealed under, with the record's binding.
    var secretLabel: String { SecretBinding.label("access key " + accessKeyID, secretBinding) }

    public var isActive: Bool { status == nil || status == "Active" }
    /// The IAM user the key belongs to, nil for an account root's key.
    public var userName: String? { PrincipalARN.userName(principal) }
}

/// A new access key with its secret, returned once by ``KMSEngine/createAccessKey(account:userName:accessKeyID:secretAccessKey:createAccount:)``.
public struct NewAccessKey: Sendable {
    public var record: AccessKeyRecord
    public var secretAccessKey: String
}
