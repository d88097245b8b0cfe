import Foundation

/// Key and alias ARNs, and the four ways a request can name a key.
public enum ARN {
    public static func key(_ keyID: String, account: String, region: String) -> String {
        "arn:aws:kms:\(region):\(account):key/\(keyID)"
    }

    public static func alias(_ aliasName: String, account: String, region: String) -> String {
        "arn:aws:kms:\(region):\(account):\(aliasName)"
    }
}

/// A `KeyId` parameter as the caller wrote it: key ID, key ARN, alias name or alias ARN.
enum KeyReference: Equatable {
    case keyID(String)
    case keyARN(account: String, region: String, keyID: String)
    case aliasName(String)
    case aliasARN(account: String, region: String, aliasName: String)

    /// Parses `text`; an `arn:` that is not a KMS key or alias ARN is InvalidArnException.
    init(parsing text: String) throws(KMSError) {
        guard !text.isEmpty, text.count <= 2048 else {
            throw KMSError.constraint(text, member: "keyId", "Member must have length between 1 and 2048")
        }
        if text.hasPrefix("alias/") {
            self = .aliasName(text)
            return
        }
        guard text.hasPrefix("arn:") else {
            self = .keyID(text)
            return
        }
        // arn:aws:kms:<region>:<account>:key/<id> | arn:aws:kms:<region>:<account>:alias/<name>
        let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6, parts[1].hasPrefix("aws"), parts[2] == "kms", !parts[3].isEmpty, parts[4].count == 12 else {
            throw KMSError(.invalidArn, "\(text) is not a valid KMS ARN")
        }
        let resource = parts[5]
        if resource.hasPrefix("key/"), resource.count > 4 {
            self = .keyARN(account: parts[4], region: parts[3], keyID: String(resource.dropFirst(4)))
        } else if resource.hasPrefix("alias/") {
            self = .aliasARN(account: parts[4], region: parts[3], aliasName: resource)
        } else {
            throw KMSError(.invalidArn, "\(text) is not a valid KMS key or alias ARN")
        }
    }

    var isAlias: Bool {
        switch self {
        case .aliasName, .aliasARN: return true
        case .keyID, .keyARN: return false
        }
    }
}
