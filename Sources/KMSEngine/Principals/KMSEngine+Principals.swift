import Foundation
import KMSFSCrypto

/// Accounts and access keys: who may call the service. Changes are audited and written through
/// like key changes; secrets are sealed under the root key and kept unsealed only in memory.
extension KMSEngine {
    static let adminCaller = Caller(account: "000000000000", region: "local", principal: "kmsd-admin", requestID: "admin")

    /// Creates an account (a random 12-digit ID unless one is given).
    public func createAccount(accountID: String? = nil, name: String) throws -> AccountRecord {
        try manage("CreateAccount", Self.adminCaller) { _, state in
            let account = try addAccount(accountID ?? Self.randomAccountID(), name: name, to: &state)
            return (account, [.putAccount(account)])
        }
    }

    public func listAccounts() -> [AccountRecord] {
        state.withLock { $0.accounts.values.sorted { $0.accountID < $1.accountID } }
    }

    /// Creates an access key for `account` (for its root, or for IAM-style user `userName`). The
    /// ID and secret are generated unless given (migrating existing credentials, CI fixtures);
    /// given ones must have the shape of AWS's. With `createAccount`, a missing account (any
    /// 12-digit ID) is created first, in the same change.
    /// `anyShape` takes given credentials of any shape a SigV4 header can carry (dev mode: the
    /// `test`/`test` of LocalStack and moto), not only AWS's.
    public func createAccessKey(account: String, userName: String? = nil, accessKeyID: String? = nil,
                                secretAccessKey: String? = nil, createAccount: Bool = false,
                                anyShape: Bool = false) throws -> (key: NewAccessKey, createdAccount: AccountRecord?) {
        try manage("CreateAccessKey", Self.adminCaller) { record, state in
            var changes: [StoreChange] = []
            var created: AccountRecord?
            if createAccount && state.accounts[account] == nil {
                created = try addAccount(account, name: "account \(account)", to: &state)
                changes.append(.putAccount(created!))
            }
            let (key, change) = try addAccessKey(account: account, userName: userName, accessKeyID: accessKeyID ?? Self.randomAccessKeyID(),
                                                 secret: secretAccessKey ?? Self.randomSecret(), anyShape: anyShape, to: &state)
            record.note = "access key \(key.record.accessKeyID) for \(key.record.principal)"
            return ((key, created), changes + change)
        }
    }

    /// Adds a validated new account to a draft state.
    func addAccount(_ id: String, name: String, to state: inout EngineState) throws -> AccountRecord {
        try Validate.accountID(id)
        guard state.accounts[id] == nil else { throw KMSError(.alreadyExists, "Account \(id) already exists") }
        let account = AccountRecord(accountID: id, name: name, creationDate: clock.now())
        state.accounts[id] = account
        return account
    }

    /// Adds a validated new access key to a draft state; the change stores its secret sealed.
    func addAccessKey(account: String, userName: String?, accessKeyID id: String, secret: String, anyShape: Bool = false,
                      to state: inout EngineState) throws -> (NewAccessKey, [StoreChange]) {
        guard state.accounts[account] != nil else { throw KMSError(.notFound, "Account \(account) does not exist") }
        if anyShape {
            try Validate.signableCredential(id, what: "access key ID", inHeader: true)
            try Validate.signableCredential(secret, what: "secret access key", inHeader: false)
        } else {
            try Validate.accessKeyID(id)
            try Validate.secretAccessKey(secret)
        }
        guard state.accessKeys[id] == nil else { throw KMSError(.alreadyExists, "Access key \(id) already exists") }
        var changes: [StoreChange] = []
        if let userName {
            try Validate.userName(userName)
            // The admin's access key for a user name makes the user, as `aws iam create-user`
            // would have (with no policies: it may do what key policies name it for).
            let arn = IdentityRecord.arn(.user, account: account, name: userName)
            if state.identities[arn] == nil {
                let user = IdentityRecord(kind: .user, account: account, name: userName, id: "AIDA" + (try Self.randomIAMID()),
                                          creationDate: clock.now(), description: nil, tags: [], policies: [:])
                state.identities[arn] = LiveIdentity(record: user)
                changes.append(.putIdentity(user))
            }
        }
        let key = AccessKeyRecord(accessKeyID: id, account: account, principal: Self.principal(account: account, userName: userName),
                                  creationDate: clock.now(), status: "Active", secretBinding: try SecretBinding.make())
        let sealed = try rootKey.seal(SecretBytes(copying: Array(secret.utf8)), label: key.secretLabel, version: 0)
        state.accessKeys[id] = LiveAccessKey(record: key, secret: SecretBytes(copying: Array(secret.utf8)))
        return (NewAccessKey(record: key, secretAccessKey: secret), changes + [.putAccessKey(key, sealedSecret: sealed)])
    }

    static func principal(account: String, userName: String?) -> String {
        userName.map { "arn:aws:iam::\(account):user/\($0)" } ?? "arn:aws:iam::\(account):root"
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

    /// The secret and identity of an active access key, for signature verification.
    public func accessKey(_ accessKeyID: String) -> (record: AccessKeyRecord, secret: SecretBytes)? {
        state.withLock { $0.accessKeys[accessKeyID].flatMap { $0.record.isActive ? ($0.record, $0.secret) : nil } }
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

extension KMSEngine {
    /// When an account was created (IAM's GetUser for an account root).
    public func accountCreationDate(_ account: String) -> Date {
        state.withLock { $0.accounts[account]?.creationDate ?? Date(timeIntervalSince1970: 0) }
    }
}
