import Foundation
import KMSAuthorization
import KMSFSCrypto
import Testing
@testable import KMSEngine

/// The decision point, through the engine's operations: key policies (default and custom,
/// delegation to IAM), identity policies, cross-account use, grants, endpoint policies, the
/// lockout check, DryRun, and the audit trail's record of each decision.
@Suite struct AuthorizationTests {
    static let account = "111122223333", other = "444455556666", region = "eu-west-1"

    static func user(_ name: String, account: String = account) -> Caller {
        Caller(account: account, region: region, principal: "arn:aws:iam::\(account):user/\(name)")
    }

    static let root = Caller(account: account, region: region)
    static let otherRoot = Caller(account: other, region: region)

    /// An engine with both accounts and users alice, bob (account 1) and mallory (account 2).
    static func fixture() throws -> EngineFixture {
        let f = try EngineFixture()
        _ = try f.engine.createAccount(accountID: account, name: "one")
        _ = try f.engine.createAccount(accountID: other, name: "two")
        for name in ["alice", "bob"] { _ = try f.engine.createIdentity(.user, name: name, caller: root) }
        _ = try f.engine.createIdentity(.user, name: "mallory", caller: otherRoot)
        return f
    }

    static func allow(_ actions: String, resource: String = "*", condition: String? = nil, effect: String = "Allow") -> String {
        let condition = condition.map { #","Condition":\#($0)"# } ?? ""
        return #"{"Version":"2012-10-17","Statement":[{"Effect":"\#(effect)","Action":\#(actions),"Resource":"\#(resource)"\#(condition)}]}"#
    }

    static func keyPolicy(_ statements: String...) -> String {
        #"{"Version":"2012-10-17","Statement":[\#(statements.joined(separator: ","))]}"#
    }

    static let adminStatement = #"{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#

    static func encrypt(_ f: EngineFixture, _ key: String, as caller: Caller, context: EncryptionContext = [:]) throws -> [UInt8] {
        try f.engine.encrypt(keyID: key, plaintext: secret("p"), encryptionContext: context, caller: caller).ciphertextBlob
    }

    @Test func theDefaultPolicyDelegatesToIdentityPolicies() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        _ = try Self.encrypt(f, key, as: Self.root)  // the account root: no identity policy needed
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: Self.user("alice")) }
        try f.engine.putIdentityPolicy(.user, name: "alice", policyName: "use", document: Self.allow(#"["kms:Encrypt","kms:Decrypt"]"#), caller: Self.root)
        let blob = try Self.encrypt(f, key, as: Self.user("alice"))
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: Self.user("alice")).keyId == key)
        #expect(throws: KMSError.accessDenied) { try f.engine.disableKey(keyID: key, caller: Self.user("alice")) }
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: Self.user("bob")) }
        // An explicit deny in another of alice's policies wins.
        try f.engine.putIdentityPolicy(.user, name: "alice", policyName: "deny", document: Self.allow(#""kms:Decrypt""#, effect: "Deny"), caller: Self.root)
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: blob, caller: Self.user("alice")) }
        _ = try Self.encrypt(f, key, as: Self.user("alice"))
    }

    @Test func aKeyPolicyNamingAUserNeedsNoIdentityPolicy() throws {
        let f = try Self.fixture()
        var request = CreateKeyRequest()
        request.policy = Self.keyPolicy(Self.adminStatement, #"""
            {"Sid":"Volume","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},
             "Action":["kms:GenerateDataKey","kms:Decrypt"],"Resource":"*",
             "Condition":{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"v1"}}}
            """#)
        let key = try f.engine.createKey(request, caller: Self.root).keyMetadata.arn
        let alice = Self.user("alice")
        let dataKey = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["kmsfs:volume": "v1"], caller: alice)
        #expect(try f.engine.decrypt(ciphertextBlob: dataKey.ciphertextBlob, encryptionContext: ["kmsfs:volume": "v1"], caller: alice).keyId == key)
        #expect(throws: KMSError.accessDenied) {
            try f.engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["kmsfs:volume": "v2"], caller: alice)
        }
        #expect(throws: KMSError.accessDenied) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: alice) }
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: alice, context: ["kmsfs:volume": "v1"]) }
        #expect(throws: KMSError.accessDenied) { try f.engine.describeKey(keyID: key, caller: alice) }
        // Whoever can decrypt with the right context and no other permission: the audit names the statement.
        let records = try f.engine.auditRecords()
        #expect(records.contains { $0.operation == "GenerateDataKey" && $0.errorCode == nil && $0.decision?.contains(#"statement "Volume""#) == true })
        #expect(records.contains { $0.operation == "GenerateDataKey" && $0.errorCode == "AccessDeniedException"
                                   && $0.decision?.hasPrefix("denied: no identity policy allows") == true })
    }

    @Test func crossAccountUseNeedsBothAccounts() throws {
        let f = try Self.fixture()
        let keyRequest = { (principal: String) in
            var request = CreateKeyRequest()
            request.policy = Self.keyPolicy(Self.adminStatement, #"""
                {"Sid":"Partner","Effect":"Allow","Principal":{"AWS":"\#(principal)"},"Action":["kms:Encrypt","kms:Decrypt","kms:DescribeKey"],"Resource":"*"}
                """#)
            return request
        }
        let key = try f.engine.createKey(keyRequest("444455556666"), caller: Self.root).keyMetadata.arn
        let mallory = Self.user("mallory", account: Self.other)
        // The other account's root may, as its own account allows it everything.
        let blob = try Self.encrypt(f, key, as: Self.otherRoot)
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: Self.otherRoot).keyId == key)
        // Its user needs its own account's identity policy too.
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: blob, caller: mallory) }
        try f.engine.putIdentityPolicy(.user, name: "mallory", policyName: "partner", document: Self.allow(#""kms:Decrypt""#, resource: key),
                                       caller: Self.otherRoot)
        #expect(try f.engine.decrypt(ciphertextBlob: blob, caller: mallory).keyId == key)
        // A key ID alone names a key of the caller's account; another account's key needs its ARN.
        let keyID = String(key.split(separator: "/").last!)
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: keyID, caller: Self.otherRoot) }
        #expect(try f.engine.describeKey(keyID: key, caller: Self.otherRoot).keyMetadata.arn == key)
        // A key that does not allow the other account refuses it, existing or not, without saying which.
        let closed = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, closed, as: Self.otherRoot) }
        let missing = closed.replacingOccurrences(of: String(closed.suffix(12)), with: "000000000000")
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, missing, as: Self.otherRoot) }
        // ... in the same words: the answer does not tell an existing key from a missing one.
        let existing = try #require(throws: KMSError.self) { try f.engine.describeKey(keyID: closed, caller: Self.otherRoot) }
        let absent = try #require(throws: KMSError.self) { try f.engine.describeKey(keyID: missing, caller: Self.otherRoot) }
        #expect(existing.message.replacingOccurrences(of: closed, with: "KEY") == absent.message.replacingOccurrences(of: missing, with: "KEY"))
        // Management stays with the owner.
        #expect(throws: KMSError.accessDenied) { try f.engine.disableKey(keyID: key, caller: Self.otherRoot) }
    }

    @Test func theLockoutCheckAndMalformedPolicies() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        let onlyAlice = Self.keyPolicy(#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}"#)
        #expect(throws: KMSError.malformedPolicyDocument) { try f.engine.putKeyPolicy(keyID: key, policy: onlyAlice, caller: Self.root) }
        #expect(try f.engine.getKeyPolicy(keyID: key, caller: Self.root).contains("Enable IAM User Permissions"))
        try f.engine.putKeyPolicy(keyID: key, policy: onlyAlice, bypassPolicyLockoutSafetyCheck: true, caller: Self.root)
        #expect(try f.engine.getKeyPolicy(keyID: key, caller: Self.user("alice")) == onlyAlice)
        #expect(throws: KMSError.accessDenied) { try f.engine.describeKey(keyID: key, caller: Self.root) }
        var create = CreateKeyRequest()
        create.policy = onlyAlice
        #expect(throws: KMSError.malformedPolicyDocument) { try f.engine.createKey(create, caller: Self.root) }
        let cases: [(String, KMSError)] = [
            ("not json", .malformedPolicyDocument),
            (#"{"Statement":[]}"#, .malformedPolicyDocument),
            (#"{"Statement":{"Effect":"Allow","Action":"kms:*","Resource":"*"}}"#, .malformedPolicyDocument),  // no Principal
            (Self.keyPolicy(#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/nobody"},"Action":"kms:*","Resource":"*"}"#),
             .malformedPolicyDocument),
            (Self.keyPolicy(Self.adminStatement, #"{"Sid":"pad","Effect":"Deny","Principal":"*","Action":"kms:Nothing","Resource":"\#(String(repeating: "x", count: 33_000))"}"#),
             KMSError(.limitExceeded, "")),
        ]
        for (text, error) in cases {
            #expect(throws: error, "\(text.prefix(60))") { try f.engine.putKeyPolicy(keyID: key, policy: text, caller: Self.user("alice")) }
        }
        do {
            try f.engine.putKeyPolicy(keyID: key, policy: #"{"Statement":{"Effect":"Maybe"}}"#, caller: Self.user("alice"))
        } catch let error as KMSError {
            #expect(error.message == "Effect must be Allow or Deny")
        }
        #expect(try f.engine.listKeyPolicies(keyID: key, caller: Self.user("alice")).policyNames == ["default"])
    }

    @Test func grantsAllowOnTheirOwnWithinTheirConstraints() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        let bob = Self.user("bob"), mallory = Self.user("mallory", account: Self.other)
        var request = CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob", operations: ["Encrypt", "Decrypt", "RetireGrant"])
        request.constraints = GrantConstraints(encryptionContextSubset: ["volume": "v1"])
        request.name = "host-1"
        let grant = try f.engine.createGrant(request, caller: Self.root)
        // Idempotent by name.
        #expect(try f.engine.createGrant(request, caller: Self.root).grantID == grant.grantID)
        let blob = try Self.encrypt(f, key, as: bob, context: ["volume": "v1", "file": "a"])
        #expect(try f.engine.decrypt(ciphertextBlob: blob, encryptionContext: ["volume": "v1", "file": "a"], caller: bob).keyId == key)
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: bob, context: ["volume": "v2"]) }
        #expect(throws: KMSError.accessDenied) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["volume": "v1"], caller: bob) }
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: Self.user("alice"), context: ["volume": "v1"]) }
        let listed = try f.engine.listGrants(keyID: key, caller: Self.root).grants
        #expect(listed.map(\.grantID) == [grant.grantID] && listed[0].name == "host-1")
        // A cross-account grantee needs no identity policy of its own.
        let partner = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::444455556666:user/mallory",
                                                                  operations: ["Decrypt"]), caller: Self.root)
        #expect(try f.engine.decrypt(ciphertextBlob: Self.encrypt(f, key, as: Self.root), caller: mallory).keyId == key)
        try f.engine.revokeGrant(keyID: key, grantID: partner.grantID, caller: Self.root)
        #expect(throws: KMSError.accessDenied) { try f.engine.decrypt(ciphertextBlob: Self.encrypt(f, key, as: Self.root), caller: mallory) }
        // The grantee retires its own grant by token; the grant is gone at once.
        #expect(throws: KMSError.accessDenied) { try f.engine.retireGrant(grantToken: grant.grantToken, caller: Self.user("alice")) }
        try f.engine.retireGrant(grantToken: grant.grantToken, caller: bob)
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: bob, context: ["volume": "v1"]) }
        #expect(try f.engine.listGrants(keyID: key, caller: Self.root).grants.isEmpty)
        #expect(throws: KMSError.self) { try f.engine.retireGrant(grantToken: grant.grantToken, caller: bob) }
        // Operations outside the grantable set are refused.
        #expect(throws: KMSError.validation) {
            try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob", operations: ["DisableKey"]), caller: Self.root)
        }
        #expect(throws: KMSError.invalidArn) {
            try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "sth else", operations: ["Decrypt"]), caller: Self.root)
        }
    }

    /// A grant is to a principal, not a name: bob deleted and made again does not inherit it.
    @Test func aRecreatedUserDoesNotInheritItsNamesakesGrant() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob", operations: ["Encrypt"]),
                                     caller: Self.root)
        _ = try Self.encrypt(f, key, as: Self.user("bob"))
        try f.engine.deleteIdentity(.user, name: "bob", caller: Self.root)
        _ = try f.engine.createIdentity(.user, name: "bob", caller: Self.root)
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: Self.user("bob")) }
        try f.reopen()
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: Self.user("bob")) }
    }

    @Test func aGrantToCreateGrantsGivesOnlyNarrowerOnes() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob",
                                                        operations: ["CreateGrant", "Decrypt"]), caller: Self.root)
        let bob = Self.user("bob")
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/alice", operations: ["Decrypt"]), caller: bob)
        #expect(throws: KMSError.accessDenied) {
            try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/alice", operations: ["Encrypt"]), caller: bob)
        }
    }

    @Test func endpointPoliciesOnlyNarrow() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        let policy = try Policy(json: Array(#"""
            {"Statement":[{"Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"},
                          {"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringNotEquals":{"aws:PrincipalAccount":"111122223333"}}}]}
            """#.utf8))
        var endpointRoot = Self.root
        endpointRoot.endpointPolicy = policy
        _ = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: endpointRoot)
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: endpointRoot) }
        #expect(throws: KMSError.accessDenied) { try f.engine.listKeys(caller: endpointRoot) }
        // The endpoint cannot widen: alice has no permission at all, through it or not.
        var alice = Self.user("alice")
        alice.endpointPolicy = policy
        #expect(throws: KMSError.accessDenied) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: alice) }
        #expect(try f.engine.auditRecords().contains { $0.decision?.contains("no endpoint policy statement allows") == true })
    }

    @Test func dryRunDecidesAndDoesNothing() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        var dry = Self.root
        dry.dryRun = true
        #expect(throws: KMSError.dryRun) { try Self.encrypt(f, key, as: dry) }
        #expect(throws: KMSError.dryRun) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: dry) }
        #expect(throws: KMSError.dryRun) { try f.engine.decrypt(ciphertextBlob: Self.encrypt(f, key, as: Self.root), caller: dry) }
        #expect(throws: KMSError.dryRun) {
            try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob", operations: ["Decrypt"]), caller: dry)
        }
        #expect(try f.engine.listGrants(keyID: key, caller: Self.root).grants.isEmpty)
        var dryAlice = Self.user("alice")
        dryAlice.dryRun = true
        #expect(throws: KMSError.accessDenied) { try Self.encrypt(f, key, as: dryAlice) }
        try f.engine.disableKey(keyID: key, caller: Self.root)
        #expect(throws: KMSError.disabled) { try Self.encrypt(f, key, as: dry) }
    }

    @Test func updateAliasNeedsTheOldKeyToo() throws {
        let f = try Self.fixture()
        let mine = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        var request = CreateKeyRequest()
        request.policy = Self.keyPolicy(Self.adminStatement, #"""
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:CreateAlias","kms:UpdateAlias"],"Resource":"*"}
            """#)
        let alices = try f.engine.createKey(request, caller: Self.root).keyMetadata.arn
        try f.engine.putIdentityPolicy(.user, name: "alice", policyName: "aliases", document: Self.allow(#""kms:*Alias""#, resource: "arn:aws:kms:*:111122223333:alias/*"), caller: Self.root)
        let alice = Self.user("alice")
        try f.engine.createAlias(aliasName: "alias/prod", targetKeyID: mine, caller: Self.root)
        // alice may point aliases at her key, but not take the alias away from a key she may not touch.
        #expect(throws: KMSError.accessDenied) { try f.engine.updateAlias(aliasName: "alias/prod", targetKeyID: alices, caller: alice) }
        try f.engine.createAlias(aliasName: "alias/hers", targetKeyID: alices, caller: alice)
        try f.engine.updateAlias(aliasName: "alias/hers", targetKeyID: alices, caller: alice)
        #expect(throws: KMSError.accessDenied) { try f.engine.deleteAlias(aliasName: "alias/hers", caller: alice) }
    }

    @Test func rolesAreAssumedThroughTheirTrustPolicy() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        let trust = Self.keyPolicy(#"{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"sts:AssumeRole"}"#)
        let role = try f.engine.createIdentity(.role, name: "reader", trustPolicy: trust, caller: Self.root)
        try f.engine.putIdentityPolicy(.role, name: "reader", policyName: "use", document: Self.allow(#""kms:Encrypt""#), caller: Self.root)
        #expect(throws: KMSError.accessDenied) { try f.engine.assumeRole(roleARN: role.arn, sessionName: "s1", caller: Self.user("bob")) }
        #expect(throws: KMSError.accessDenied) { try f.engine.assumeRole(roleARN: role.arn + "x", sessionName: "s1", caller: Self.user("alice")) }
        let credentials = try f.engine.assumeRole(roleARN: role.arn, sessionName: "host-1", durationSeconds: 900, caller: Self.user("alice"))
        #expect(credentials.assumedRoleARN == "arn:aws:sts::111122223333:assumed-role/reader/host-1")
        let session = try f.engine.session(token: credentials.sessionToken, accessKeyID: credentials.accessKeyID)
        #expect(session.principal == credentials.assumedRoleARN && text(session.secret) == credentials.secretAccessKey)
        #expect(throws: KMSError.self) { try f.engine.session(token: credentials.sessionToken, accessKeyID: "ASIAOTHER") }
        var forged = Array(credentials.sessionToken.utf8)
        forged[forged.count / 2] ^= 1
        #expect(throws: KMSError.self) { try f.engine.session(token: String(decoding: forged, as: UTF8.self), accessKeyID: credentials.accessKeyID) }
        let caller = Caller(account: Self.account, region: Self.region, principal: session.principal)
        _ = try Self.encrypt(f, key, as: caller)
        #expect(throws: KMSError.accessDenied) { try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: caller) }
        // A grant to the role covers its sessions.
        _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: role.arn, operations: ["GenerateDataKey"]), caller: Self.root)
        _ = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: caller)
        f.clock.advance(days: 1)
        #expect(throws: KMSError(.expiredToken, "")) { try f.engine.session(token: credentials.sessionToken, accessKeyID: credentials.accessKeyID) }
        #expect(throws: KMSError(.iamValidation, "")) {
            try f.engine.assumeRole(roleARN: role.arn, sessionName: "long", durationSeconds: 7200, caller: Self.user("alice"))
        }
        // Deleting the role ends its sessions.
        let fresh = try f.engine.assumeRole(roleARN: role.arn, sessionName: "s2", caller: Self.user("alice"))
        #expect(throws: KMSError(.deleteConflict, "")) { try f.engine.deleteIdentity(.role, name: "reader", caller: Self.root) }
        try f.engine.deleteIdentityPolicy(.role, name: "reader", policyName: "use", caller: Self.root)
        try f.engine.deleteIdentity(.role, name: "reader", caller: Self.root)
        #expect(throws: KMSError.self) { try f.engine.session(token: fresh.sessionToken, accessKeyID: fresh.accessKeyID) }
    }

    @Test func accessKeysThroughIAM() throws {
        let f = try Self.fixture()
        let first = try f.engine.createAccessKey(userName: "alice", caller: Self.root)
        _ = try f.engine.createAccessKey(userName: "alice", caller: Self.root)
        #expect(throws: KMSError(.iamLimitExceeded, "")) { try f.engine.createAccessKey(userName: "alice", caller: Self.root) }
        #expect(f.engine.accessKey(first.record.accessKeyID)?.record.principal == "arn:aws:iam::111122223333:user/alice")
        try f.engine.updateAccessKey(first.record.accessKeyID, status: "Inactive", userName: "alice", caller: Self.root)
        #expect(f.engine.accessKey(first.record.accessKeyID) == nil)
        try f.reopen()
        #expect(f.engine.accessKey(first.record.accessKeyID) == nil)
        try f.engine.updateAccessKey(first.record.accessKeyID, status: "Active", userName: "alice", caller: Self.root)
        #expect(f.engine.accessKey(first.record.accessKeyID) != nil)
        // bob may not manage alice's keys; nor may alice without iam: permissions.
        #expect(throws: KMSError.accessDenied) { try f.engine.deleteAccessKey(first.record.accessKeyID, userName: "alice", caller: Self.user("bob")) }
        #expect(throws: KMSError.accessDenied) { try f.engine.listAccessKeys(userName: nil, caller: Self.user("alice")) }
        try f.engine.putIdentityPolicy(.user, name: "alice", policyName: "self",
                                       document: Self.allow(#""iam:*AccessKey*""#, resource: "arn:aws:iam::111122223333:user/${aws:username}"), caller: Self.root)
        #expect(throws: KMSError(.deleteConflict, "")) { try f.engine.deleteIdentity(.user, name: "alice", caller: Self.root) }
        #expect(throws: KMSError(.malformedIdentityPolicy, "")) {
            try f.engine.putIdentityPolicy(.user, name: "bob", policyName: "p", document: #"{"Statement":{"Effect":"Allow","Action":"kms:*"}}"#, caller: Self.root)
        }
        #expect(throws: KMSError(.noSuchEntity, "")) { try f.engine.getIdentity(.user, name: "ghost", caller: Self.root) }
        #expect(throws: KMSError(.entityAlreadyExists, "")) { try f.engine.createIdentity(.user, name: "ALICE", caller: Self.root) }
    }

    /// Every operation, by a principal no policy allows anything: refused, and audited as refused.
    @Test func everyOperationIsDeniedWithoutAPolicyAllowingIt() throws {
        let f = try Self.fixture()
        let key = try f.engine.createKey(CreateKeyRequest(), caller: Self.root).keyMetadata.arn
        try f.engine.createAlias(aliasName: "alias/a", targetKeyID: key, caller: Self.root)
        let blob = try Self.encrypt(f, key, as: Self.root)
        let grant = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/alice",
                                                                operations: ["Decrypt"]), caller: Self.root)
        func created(_ spec: KeySpec, _ usage: KeyUsage, origin: Origin = .awsKMS) throws -> String {
            var request = CreateKeyRequest()
            (request.keySpec, request.keyUsage, request.origin) = (spec, usage, origin)
            return try f.engine.createKey(request, caller: Self.root).keyMetadata.arn
        }
        let signer = try created(.eccNISTP256, .signVerify), mac = try created(.hmac256, .generateVerifyMAC)
        let agreeing = try created(.eccNISTP256, .keyAgreement), external = try created(.symmetricDefault, .encryptDecrypt, origin: .external)
        let peer = try f.engine.getPublicKey(keyID: agreeing, caller: Self.root).publicKey
        let parameters = try f.engine.getParametersForImport(keyID: external, wrappingAlgorithm: .rsaesOAEPSHA256, wrappingKeySpec: .rsa2048,
                                                             caller: Self.root)
        let bob = Self.user("bob")
        let calls: [(String, () throws -> Void)] = [
            ("Sign", { _ = try f.engine.sign(keyID: signer, message: [1], signingAlgorithm: .ecdsaSHA256, caller: bob) }),
            ("Verify", { _ = try f.engine.verify(keyID: signer, message: [1], signature: [1], signingAlgorithm: .ecdsaSHA256, caller: bob) }),
            ("GetPublicKey", { _ = try f.engine.getPublicKey(keyID: signer, caller: bob) }),
            ("GenerateMac", { _ = try f.engine.generateMac(keyID: mac, message: [1], macAlgorithm: .hmacSHA256, caller: bob) }),
            ("VerifyMac", { _ = try f.engine.verifyMac(keyID: mac, message: [1], mac: [1], macAlgorithm: .hmacSHA256, caller: bob) }),
            ("GenerateDataKeyPair", { _ = try f.engine.generateDataKeyPair(keyID: key, keyPairSpec: .eccNISTP256, caller: bob) }),
            ("GenerateDataKeyPairWithoutPlaintext", {
                _ = try f.engine.generateDataKeyPairWithoutPlaintext(keyID: key, keyPairSpec: .eccNISTP256, caller: bob)
            }),
            ("DeriveSharedSecret", { _ = try f.engine.deriveSharedSecret(keyID: agreeing, keyAgreementAlgorithm: .ecdh, publicKey: peer, caller: bob) }),
            ("GetParametersForImport", {
                _ = try f.engine.getParametersForImport(keyID: external, wrappingAlgorithm: .rsaesOAEPSHA256, wrappingKeySpec: .rsa2048, caller: bob)
            }),
            ("ImportKeyMaterial", { _ = try f.engine.importKeyMaterial(keyID: external, importToken: parameters.importToken, encryptedKeyMaterial: [1], caller: bob) }),
            ("DeleteImportedKeyMaterial", { _ = try f.engine.deleteImportedKeyMaterial(keyID: external, caller: bob) }),
            ("GetKeyLastUsage", { _ = try f.engine.getKeyLastUsage(keyID: key, caller: bob) }),
            ("CreateCustomKeyStore", { _ = try f.engine.createCustomKeyStore(CustomKeyStoreSettings(), caller: bob) }),
            ("DescribeCustomKeyStores", { _ = try f.engine.describeCustomKeyStores(id: nil, name: nil, caller: bob) }),
            ("ConnectCustomKeyStore", { try f.engine.connectCustomKeyStore(id: "cks-1", caller: bob) }),
            ("DisconnectCustomKeyStore", { try f.engine.disconnectCustomKeyStore(id: "cks-1", caller: bob) }),
            ("UpdateCustomKeyStore", { try f.engine.updateCustomKeyStore(id: "cks-1", newName: nil, CustomKeyStoreSettings(), caller: bob) }),
            ("DeleteCustomKeyStore", { try f.engine.deleteCustomKeyStore(id: "cks-1", caller: bob) }),
            ("ReplicateKey", { _ = try f.engine.replicateKey(ReplicateKeyRequest(keyID: key, replicaRegion: "us-west-2"), caller: bob) }),
            ("UpdatePrimaryRegion", { try f.engine.updatePrimaryRegion(keyID: key, primaryRegion: "us-west-2", caller: bob) }),
            ("CreateKey", { _ = try f.engine.createKey(CreateKeyRequest(), caller: bob) }),
            ("DescribeKey", { _ = try f.engine.describeKey(keyID: key, caller: bob) }),
            ("ListKeys", { _ = try f.engine.listKeys(caller: bob) }),
            ("UpdateKeyDescription", { try f.engine.updateKeyDescription(keyID: key, description: "x", caller: bob) }),
            ("EnableKey", { try f.engine.enableKey(keyID: key, caller: bob) }),
            ("DisableKey", { try f.engine.disableKey(keyID: key, caller: bob) }),
            ("ScheduleKeyDeletion", { _ = try f.engine.scheduleKeyDeletion(keyID: key, caller: bob) }),
            ("CancelKeyDeletion", { _ = try f.engine.cancelKeyDeletion(keyID: key, caller: bob) }),
            ("Encrypt", { _ = try Self.encrypt(f, key, as: bob) }),
            ("Decrypt", { _ = try f.engine.decrypt(ciphertextBlob: blob, caller: bob) }),
            ("ReEncrypt", { _ = try f.engine.reEncrypt(ciphertextBlob: blob, destinationKeyID: key, caller: bob) }),
            ("GenerateDataKey", { _ = try f.engine.generateDataKey(keyID: key, keySpec: .aes256, caller: bob) }),
            ("GenerateDataKeyWithoutPlaintext", { _ = try f.engine.generateDataKeyWithoutPlaintext(keyID: key, keySpec: .aes256, caller: bob) }),
            ("GenerateRandom", { _ = try f.engine.generateRandom(numberOfBytes: 8, caller: bob) }),
            ("CreateAlias", { try f.engine.createAlias(aliasName: "alias/b", targetKeyID: key, caller: bob) }),
            ("UpdateAlias", { try f.engine.updateAlias(aliasName: "alias/a", targetKeyID: key, caller: bob) }),
            ("DeleteAlias", { try f.engine.deleteAlias(aliasName: "alias/a", caller: bob) }),
            ("ListAliases", { _ = try f.engine.listAliases(caller: bob) }),
            ("TagResource", { try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: "a", tagValue: "b")], caller: bob) }),
            ("UntagResource", { try f.engine.untagResource(keyID: key, tagKeys: ["a"], caller: bob) }),
            ("ListResourceTags", { _ = try f.engine.listResourceTags(keyID: key, caller: bob) }),
            ("EnableKeyRotation", { try f.engine.enableKeyRotation(keyID: key, caller: bob) }),
            ("DisableKeyRotation", { try f.engine.disableKeyRotation(keyID: key, caller: bob) }),
            ("GetKeyRotationStatus", { _ = try f.engine.getKeyRotationStatus(keyID: key, caller: bob) }),
            ("RotateKeyOnDemand", { _ = try f.engine.rotateKeyOnDemand(keyID: key, caller: bob) }),
            ("ListKeyRotations", { _ = try f.engine.listKeyRotations(keyID: key, caller: bob) }),
            ("GetKeyPolicy", { _ = try f.engine.getKeyPolicy(keyID: key, caller: bob) }),
            ("PutKeyPolicy", { try f.engine.putKeyPolicy(keyID: key, policy: Self.keyPolicy(Self.adminStatement), caller: bob) }),
            ("ListKeyPolicies", { _ = try f.engine.listKeyPolicies(keyID: key, caller: bob) }),
            ("CreateGrant", { _ = try f.engine.createGrant(CreateGrantRequest(keyID: key, granteePrincipal: "arn:aws:iam::111122223333:user/bob", operations: ["Decrypt"]), caller: bob) }),
            ("ListGrants", { _ = try f.engine.listGrants(keyID: key, caller: bob) }),
            ("ListRetirableGrants", { _ = try f.engine.listRetirableGrants(retiringPrincipal: "arn:aws:iam::111122223333:user/bob", caller: bob) }),
            ("RetireGrant", { try f.engine.retireGrant(grantToken: grant.grantToken, caller: bob) }),
            ("RevokeGrant", { try f.engine.revokeGrant(keyID: key, grantID: grant.grantID, caller: bob) }),
            ("CreateUser", { _ = try f.engine.createIdentity(.user, name: "eve", caller: bob) }),
            ("PutUserPolicy", { try f.engine.putIdentityPolicy(.user, name: "bob", policyName: "all", document: Self.allow(#""*""#), caller: bob) }),
            ("CreateAccessKey", { _ = try f.engine.createAccessKey(userName: "alice", caller: bob) }),
            ("ListUsers", { _ = try f.engine.listIdentities(.user, caller: bob) }),
        ]
        for (name, call) in calls {
            #expect(throws: KMSError.accessDenied, "\(name)") { try call() }
        }
        // Every KMS operation the service declares is in the list.
        #expect(Set(KMSOperation.allCases.map(\.rawValue)).subtracting(calls.map(\.0)).isEmpty,
                "not checked: \(Set(KMSOperation.allCases.map(\.rawValue)).subtracting(calls.map(\.0)).sorted())")
        let refused = try f.engine.auditRecords().filter { $0.principal == bob.principal }
        #expect(refused.count == calls.count)
        #expect(refused.allSatisfy { $0.errorCode == "AccessDeniedException" && $0.decision?.hasPrefix("denied") == true })
    }
}
