import Foundation
import KMSFSCrypto

/// Temporary credentials for a role, as STS issues them: an access key ID (`ASIA…`), a secret,
/// and a session token that carries both, with the role, session and expiry, sealed under the
/// root key. Nothing is stored: any kmsd with the root key verifies a token, and a token
/// outlives a restart as AWS's do. A deleted role's sessions stop working.
public struct SessionCredentials: Sendable {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String
    public var expiration: Date
    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION`.
    public var assumedRoleARN: String
    /// `AROA…:SESSION`.
    public var assumedRoleID: String
}

/// What a session token proves once it opens.
public struct Session: Sendable {
    public var accessKeyID: String
    public var secret: SecretBytes
    public var account: String
    public var principal: String
    public var expiration: Date
}

/// The sealed part of a session token.
private struct SessionClaims: Codable {
    var accessKeyID: String
    var secret: String
    var account: String
    var roleARN: String
    var roleID: String
    var sessionName: String
    var expiration: Date
}

extension KMSEngine {
    private static let sessionLabel = "sts session"
    static let sessionTokenPrefix = "kmsd-session-1."

    /// AssumeRole: temporary credentials for `roleARN`, if its trust policy (and, when it names
    /// the caller's account rather than the caller, the caller's identity policies) allow
    /// sts:AssumeRole. Role chaining (a session assuming a role) is limited to one hour, as AWS.
    public func assumeRole(roleARN: String, sessionName: String, durationSeconds: Int? = nil, caller: Caller) throws -> SessionCredentials {
        try perform("AssumeRole", caller) { record, state in
            try Validate.iamName(sessionName, "role session name", 64, minimum: 2)
            try Validate.length(roleARN, "roleArn", 20...2048)
            record.note = "\(roleARN) as \(sessionName)"
            let role = state.identities[roleARN].flatMap { $0.record.kind == .role ? $0 : nil }
            let account = roleARN.split(separator: ":", omittingEmptySubsequences: false).dropFirst(4).first.map(String.init) ?? ""
            guard let role else {
                // As AWS: a role that does not exist is indistinguishable from one that does not trust you.
                record.decision = "denied sts:AssumeRole on \(roleARN): no such role"
                throw KMSError(.accessDenied, "User: \(caller.principal) is not authorized to perform: sts:AssumeRole on resource: \(roleARN) because no resource-based policy allows the sts:AssumeRole action")
            }
            try authorize(.stsAssumeRole, caller, target: .iam(roleARN, account: account, policy: role.trustPolicy, policyName: "trust policy"),
                          in: state, record: &record)
            let maximum = caller.roleARN != nil ? 3600 : (role.record.maxSessionDuration ?? 3600)
            let duration = durationSeconds ?? 3600
            guard (900...maximum).contains(duration) else {
                throw KMSError(.iamValidation, "The requested DurationSeconds exceeds the MaxSessionDuration set for this role (900 to \(maximum) seconds).")
            }
            let claims = SessionClaims(accessKeyID: "ASIA" + (try Self.randomIAMID()).prefix(16), secret: try Self.randomSecret(),
                                       account: role.record.account, roleARN: roleARN, roleID: role.record.id, sessionName: sessionName,
                                       expiration: clock.now().addingTimeInterval(Double(duration)).rounded())
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .secondsSince1970
            let sealed = try rootKey.seal(SecretBytes(copying: Array(try encoder.encode(claims))), label: Self.sessionLabel, version: 0)
            let arn = "arn:aws:sts::\(role.record.account):assumed-role/\(role.record.name)/\(sessionName)"
            return SessionCredentials(accessKeyID: claims.accessKeyID, secretAccessKey: claims.secret,
                                      sessionToken: Self.sessionTokenPrefix + Data(sealed).base64EncodedString(),
                                      expiration: claims.expiration, assumedRoleARN: arn, assumedRoleID: "\(role.record.id):\(sessionName)")
        }
    }

    /// Opens a session token presented with `accessKeyID`.
    ///
    /// - Throws: ExpiredTokenException after its expiry; UnrecognizedClient-like
    ///   (`InvalidClientTokenId`) when it does not open, names another key, or its role is gone.
    public func session(token: String, accessKeyID: String) throws(KMSError) -> Session {
        let invalid = KMSError(.init(rawValue: "UnrecognizedClientException"), "The security token included in the request is invalid.")
        guard token.hasPrefix(Self.sessionTokenPrefix), token.utf8.count <= 4096,
              let sealed = Data(base64Encoded: String(token.dropFirst(Self.sessionTokenPrefix.count))),
              let opened = (try? rootKey.open(Array(sealed), label: Self.sessionLabel, version: 0))
                ?? previousRootKey.flatMap({ try? $0.open(Array(sealed), label: Self.sessionLabel, version: 0) })
        else { throw invalid }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .secondsSince1970
        guard let claims = opened.withUnsafeBytes({ try? decoder.decode(SessionClaims.self, from: Data($0)) }),
              claims.accessKeyID == accessKeyID
        else { throw invalid }
        guard clock.now() < claims.expiration else {
            throw KMSError(.expiredToken, "The security token included in the request is expired")
        }
        guard let role = state.withLock({ $0.identities[claims.roleARN] }), role.record.id == claims.roleID else { throw invalid }
        let name = claims.roleARN.split(separator: "/").last.map(String.init) ?? ""
        return Session(accessKeyID: accessKeyID, secret: SecretBytes(copying: Array(claims.secret.utf8)), account: claims.account,
                       principal: "arn:aws:sts::\(claims.account):assumed-role/\(name)/\(claims.sessionName)", expiration: claims.expiration)
    }

    /// GetCallerIdentity: who the credentials are (always allowed, as AWS).
    public func callerIdentity(_ caller: Caller) -> (userID: String, account: String, arn: String) {
        let state = state.withLock { $0 }
        if let role = caller.roleARN, let identity = state.identities[role] {
            let session = caller.principal.split(separator: "/").last.map(String.init) ?? ""
            return ("\(identity.record.id):\(session)", caller.account, caller.principal)
        }
        if let identity = state.identities[caller.principal] { return (identity.record.id, caller.account, caller.principal) }
        return (caller.account, caller.account, caller.principal)
    }
}

private extension Date {
    func rounded() -> Date { Date(timeIntervalSince1970: timeIntervalSince1970.rounded(.down)) }
}
