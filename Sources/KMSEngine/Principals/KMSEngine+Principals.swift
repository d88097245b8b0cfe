import Foundation
import KMSFSCrypto

/// Accounts and access keys: who may call the service. Changes are audited and written through
/// like key changes; secrets are sealed under the root key and kept unsealed only in memory.
extension KMSEngine {
    static let adminCaller = Caller(account: "000000000000", region: "local", principal: "kmsd-admin", requestID: "admin")

    /// Creates an account (a random 12-digit ID unless one is given).
    public func createAccount(accountID: String? = nil, name: String) throws -> AccountRecord {
        try manage("CreateAccount", Self.adminCaller) { _, state in
            let id = try accountID ?? Self.randomAccountID()
            guard id.count == 12, id.allSatisfy(\.isASCII), id.allSatisfy(\.isNumber) else {
                throw KMSError(.validation, "An account ID is 12 digits: \(id)")
            }
            guard state.accounts[id] == nil else { throw KMSError(.alreadyExists, "Account \(id) already exists") }
            let account = AccountRecord(accountID: id, name: name, creationDate: clock.now())
            state.accounts[id] = account
            return (account, [.putAccount(account)])
        }
    }

    public func listAccounts() -> [AccountRecord] {
        state.withLock { $0.accounts.values.sorted { $0.accountID < $1.accountID } }
    }

    /// Creates an access key for `account` (for its root, or for IAM-style user `userName`). The
    /// ID and secret are generated unless given (migrating existing credentials).
    public func createAccessKey(account: String, userName: String? = nil, accessKeyID: String? = nil,
                                secretAccessKey: String? = nil) throws -> NewAccessKey {
        try manage("CreateAccessKey", Self.adminCaller) { record, state in
            guard state.accounts[account] != nil else { throw KMSError(.notFound, "Account \(account) does not exist") }
            let id = try accessKeyID ?? Self.randomAccessKeyID()
            guard (16...128).contains(id.count), id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
                throw KMSError(.validation, "An access key ID is 16 to 128 letters and digits")
            }
            guard state.accessKeys[id] == nil else { throw KMSError(.alreadyExists, "Access key \(id) already exists") }
            let secret = try secretAccessKey ?? Self.randomSecret()
            guard (16...128).contains(secret.count), secret.allSatisfy({ $0.isASCII && !$0.isWhitespace }) else {
                throw KMSError(.validation, "A secret access key is 16 to 128 printable ASCII characters")
            }
            if let userName {
                guard (1...64).contains(userName.count),
                      userName.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+=,.@_-".contains($0)) })
                else { throw KMSError(.validation, "A user name is 1 to 64 of the characters IAM allows") }
            }
            let principal = userName.map { "arn:aws:iam::\(account):user/\($0)" } ?? "arn:aws:iam::\(account):root"
            let key = AccessKeyRecord(accessKeyID: id, account: account, principal: principal, creationDate: clock.now())
            let sealed = try rootKey.seal(SecretBytes(copying: Array(secret.utf8)), label: "access key " + id, version: 0)
            record.note = "access key \(id) for \(principal)"
            state.accessKeys[id] = LiveAccessKey(record: key, secret: SecretBytes(copying: Array(secret.utf8)))
            return (NewAccessKey(record: key, secretAccessKey: secret), [.putAccessKey(key, sealedSecret: sealed)])
        }
    }

    public func listAccessKeys(account: String? = nil) -> [AccessKeyRecord] {
        state.withLock { state in
            state.accessKeys.values.map(\.record).filter { account == nil || $0.account == account }.sorted { $0.accessKeyID < $1.accessKeyID }
        }
    }

    /// Deletes an access key: requests signed with it are refused from now on.
    public func revokeAccessKey(_ accessKeyID: String) throws {
        try manage("RevokeAccessKey", Self.adminCaller) { record, state in
            guard state.accessKeys.removeValue(forKey: accessKeyID) != nil else {
                throw KMSError(.notFound, "Access key \(accessKeyID) does not exist")
            }
            record.note = "access key \(accessKeyID)"
            return ((), [.deleteAccessKey(accessKeyID)])
        }
    }

    /// The secret and identity of an access key, for signature verification.
    public func accessKey(_ accessKeyID: String) -> (record: AccessKeyRecord, secret: SecretBytes)? {
        state.withLock { $0.accessKeys[accessKeyID].map { ($0.record, $0.secret) } }
    }

    static func randomAccountID() throws -> String {
        var id = String(try SecureRandom.bytes(count: 12).map { Character(String($0 % 10)) })
        if id.first == "0" { id = "1" + id.dropFirst() }
        return id
    }

    /// `AKIA` and 16 characters of AWS's access key alphabet (A–Z, 2–7).
    static func randomAccessKeyID() throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return "AKIA" + String(try SecureRandom.bytes(count: 16).map { alphabet[Int($0 % 32)] })
    }

    /// 40 characters of base64 alphabet, like AWS secret access keys (240 random bits).
    static func randomSecret() throws -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        return String(try SecureRandom.bytes(count: 40).map { alphabet[Int($0 % 64)] })
    }
}

/// An access key as the engine serves it: its record and its unsealed secret.
final class LiveAccessKey: Sendable {
    let record: AccessKeyRecord
    let secret: SecretBytes
    init(record: AccessKeyRecord, secret: SecretBytes) {
        self.record = record
        self.secret = secret
    }
}
