import KMSAuthorization
import Testing

/// Table-driven cases of the IAM policy language as AWS documents it (the policy evaluation
/// logic, the condition operators, and KMS's key policy semantics). Each case is one policy,
/// one request and the outcome AWS gives.
@Suite struct EvaluatorTests {
    static let account = "111122223333"
    static let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    static let alice = AuthorizationRequest.Principal(arn: "arn:aws:iam::111122223333:user/alice", account: account)
    static let root = AuthorizationRequest.Principal(arn: "arn:aws:iam::111122223333:root", account: account)
    static let stranger = AuthorizationRequest.Principal(arn: "arn:aws:iam::444455556666:user/mallory", account: "444455556666")
    static let session = AuthorizationRequest.Principal(arn: "arn:aws:sts::111122223333:assumed-role/reader/host-1", account: account,
                                                        roleARN: "arn:aws:iam::111122223333:role/reader")
    static let kmsService = AuthorizationRequest.Principal(arn: "kms.amazonaws.com", account: "", service: "kms.amazonaws.com")

    struct Case: CustomTestStringConvertible, Sendable {
        let name: String
        let statement: String
        let principal: AuthorizationRequest.Principal
        let action: String
        let values: [String: [String]]
        let expected: Evaluator.Outcome
        var testDescription: String { name }
    }

    static func request(_ c: Case) -> AuthorizationRequest {
        AuthorizationRequest(principal: c.principal, action: c.action, resource: key, values: c.values)
    }

    static func policy(_ statements: String) throws -> Policy {
        try Policy(json: Array(#"{"Version":"2012-10-17","Statement":[\#(statements)]}"#.utf8))
    }

    static func allowAlice(_ condition: String) -> String {
        #"{"Sid":"c","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*","Condition":\#(condition)}"#
    }

    static let allowed = Evaluator.Outcome.allowed(sid: "c", delegated: false)
    static let none = Evaluator.Outcome.notApplicable

    /// Principals, actions, resources, explicit deny, delegation to the account.
    static let structure: [Case] = [
        Case(name: "the default key policy delegates to the account", statement: #"{"Sid":"root","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "root", delegated: true)),
        Case(name: "an account ID delegates like its root ARN", statement: #"{"Sid":"root","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}"#,
             principal: alice, action: "kms:Encrypt", values: [:], expected: .allowed(sid: "root", delegated: true)),
        Case(name: "the account root itself is named directly", statement: #"{"Sid":"root","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}"#,
             principal: root, action: "kms:Encrypt", values: [:], expected: .allowed(sid: "root", delegated: false)),
        Case(name: "another account is not named by this account's root", statement: #"{"Sid":"root","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"}"#,
             principal: stranger, action: "kms:Decrypt", values: [:], expected: none),
        Case(name: "a user named by ARN", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::111122223333:user/alice"]},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"}"#,
             principal: alice, action: "kms:Encrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "an action not listed", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:Decrypt"],"Resource":"*"}"#,
             principal: alice, action: "kms:ScheduleKeyDeletion", values: [:], expected: none),
        Case(name: "action wildcards", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Generate*","Resource":"*"}"#,
             principal: alice, action: "kms:GenerateDataKeyWithoutPlaintext", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "actions are case-insensitive", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"KMS:decrypt","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "? matches one character", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:?ncrypt","Resource":"*"}"#,
             principal: alice, action: "kms:Encrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "NotAction allows everything else", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"NotAction":["kms:ScheduleKeyDeletion","kms:PutKeyPolicy"],"Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "NotAction excludes what it lists", statement: #"{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"NotAction":"kms:Schedule*","Resource":"*"}"#,
             principal: alice, action: "kms:ScheduleKeyDeletion", values: [:], expected: none),
        Case(name: "an explicit deny wins over an allow", statement: #"{"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"d","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .denied(sid: "d")),
        Case(name: "a deny for someone else does not apply", statement: #"{"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"d","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:user/mallory"},"Action":"kms:*","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "a", delegated: false)),
        Case(name: "Principal * names everyone", statement: #"{"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#,
             principal: stranger, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "a", delegated: false)),
        Case(name: "Principal {AWS: *} names everyone", statement: #"{"Sid":"a","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: stranger, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "a", delegated: false)),
        Case(name: "NotPrincipal with Deny: everyone but alice is denied", statement: #"{"Sid":"d","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}"#,
             principal: stranger, action: "kms:Decrypt", values: [:], expected: .denied(sid: "d")),
        Case(name: "NotPrincipal with Deny does not deny alice", statement: #"{"Sid":"d","Effect":"Deny","NotPrincipal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:*","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: none),
        Case(name: "a role ARN names its assumed-role sessions", statement: #"{"Sid":"r","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/reader"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: session, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "r", delegated: false)),
        Case(name: "a session ARN names that session", statement: #"{"Sid":"r","Effect":"Allow","Principal":{"AWS":"arn:aws:sts::111122223333:assumed-role/reader/host-1"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: session, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "r", delegated: false)),
        Case(name: "a service principal", statement: #"{"Sid":"s","Effect":"Allow","Principal":{"Service":"kms.amazonaws.com"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: kmsService, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "s", delegated: false)),
        Case(name: "a service is not an AWS account principal", statement: #"{"Sid":"s","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: kmsService, action: "kms:Decrypt", values: [:], expected: none),
        Case(name: "a resource that is not this key", statement: #"{"Sid":"u","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/other"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: none),
        Case(name: "a resource pattern", statement: #"{"Sid":"u","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:us-east-1:111122223333:key/*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "resources are case-sensitive", statement: #"{"Sid":"u","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:US-EAST-1:111122223333:key/*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: none),
        Case(name: "NotResource", statement: #"{"Sid":"u","Effect":"Allow","Principal":"*","Action":"kms:*","NotResource":"arn:aws:kms:*:*:key/other"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
        Case(name: "a direct allow is preferred over a delegated one", statement: #"{"Sid":"root","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"kms:*","Resource":"*"},{"Sid":"u","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}"#,
             principal: alice, action: "kms:Decrypt", values: [:], expected: .allowed(sid: "u", delegated: false)),
    ]

    static let context = ["kms:EncryptionContext:kmsfs:volume": ["v1"], "kms:EncryptionContextKeys": ["kmsfs:volume", "kmsfs:file"],
                          "kms:CallerAccount": [account], "aws:SourceIp": ["10.1.2.3"], "aws:SecureTransport": ["true"],
                          "aws:CurrentTime": ["2026-11-29T12:00:00Z"], "kms:ViaService": ["kmsfs"], "aws:PrincipalArn": [alice.arn],
                          "kms:GrantIsForAWSResource": ["false"], "kms:KeySpec": ["SYMMETRIC_DEFAULT"], "aws:MultiFactorAuthAge": ["300"]]

    /// Condition operators and qualifiers, against `context`.
    static let conditions: [(String, String, Bool)] = [
        ("StringEquals on a context key", #"{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"v1"}}"#, true),
        ("StringEquals, another value", #"{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"v2"}}"#, false),
        ("StringEquals, any of several values", #"{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":["v0","v1"]}}"#, true),
        ("StringEquals is case-sensitive in values", #"{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"V1"}}"#, false),
        ("condition key names are case-insensitive", #"{"StringEquals":{"KMS:CALLERACCOUNT":"111122223333"}}"#, true),
        ("context keys keep their case", #"{"StringEquals":{"kms:EncryptionContext:KMSFS:volume":"v1"}}"#, false),
        ("StringNotEquals", #"{"StringNotEquals":{"kms:CallerAccount":"444455556666"}}"#, true),
        ("StringNotEquals, equal", #"{"StringNotEquals":{"kms:CallerAccount":"111122223333"}}"#, false),
        ("StringNotEquals on a missing key is true", #"{"StringNotEquals":{"kms:EncryptionContext:absent":"x"}}"#, true),
        ("StringEquals on a missing key is false", #"{"StringEquals":{"kms:EncryptionContext:absent":"x"}}"#, false),
        ("StringEqualsIfExists on a missing key is true", #"{"StringEqualsIfExists":{"kms:EncryptionContext:absent":"x"}}"#, true),
        ("StringEqualsIfExists on a present key compares", #"{"StringEqualsIfExists":{"kms:EncryptionContext:kmsfs:volume":"x"}}"#, false),
        ("StringEqualsIgnoreCase", #"{"StringEqualsIgnoreCase":{"kms:EncryptionContext:kmsfs:volume":"V1"}}"#, true),
        ("StringNotEqualsIgnoreCase", #"{"StringNotEqualsIgnoreCase":{"kms:EncryptionContext:kmsfs:volume":"V1"}}"#, false),
        ("StringLike with *", #"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/*"}}"#, true),
        ("StringLike with ?", #"{"StringLike":{"kms:EncryptionContext:kmsfs:volume":"v?"}}"#, true),
        ("StringLike, no match", #"{"StringLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}"#, false),
        ("StringNotLike", #"{"StringNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:role/*"}}"#, true),
        ("NumericLessThan", #"{"NumericLessThan":{"aws:MultiFactorAuthAge":"3600"}}"#, true),
        ("NumericLessThan, not less", #"{"NumericLessThan":{"aws:MultiFactorAuthAge":"300"}}"#, false),
        ("NumericLessThanEquals", #"{"NumericLessThanEquals":{"aws:MultiFactorAuthAge":"300"}}"#, true),
        ("NumericGreaterThan", #"{"NumericGreaterThan":{"aws:MultiFactorAuthAge":"299.5"}}"#, true),
        ("NumericGreaterThanEquals", #"{"NumericGreaterThanEquals":{"aws:MultiFactorAuthAge":"301"}}"#, false),
        ("NumericEquals with a JSON number", #"{"NumericEquals":{"aws:MultiFactorAuthAge":300}}"#, true),
        ("NumericNotEquals", #"{"NumericNotEquals":{"aws:MultiFactorAuthAge":"300"}}"#, false),
        ("a number that is not one never matches", #"{"NumericEquals":{"aws:MultiFactorAuthAge":"three hundred"}}"#, false),
        ("DateLessThan", #"{"DateLessThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#, true),
        ("DateGreaterThan", #"{"DateGreaterThan":{"aws:CurrentTime":"2027-01-01T00:00:00Z"}}"#, false),
        ("DateGreaterThanEquals with a day", #"{"DateGreaterThanEquals":{"aws:CurrentTime":"2026-11-29"}}"#, true),
        ("DateEquals with epoch seconds", #"{"DateEquals":{"aws:CurrentTime":"1795953600"}}"#, true),
        ("DateNotEquals", #"{"DateNotEquals":{"aws:CurrentTime":"2026-11-29T12:00:00Z"}}"#, false),
        ("Bool true", #"{"Bool":{"aws:SecureTransport":"true"}}"#, true),
        ("Bool with a JSON boolean", #"{"Bool":{"aws:SecureTransport":true}}"#, true),
        ("Bool false", #"{"Bool":{"aws:SecureTransport":"false"}}"#, false),
        ("Bool on a missing key is false", #"{"Bool":{"aws:ViaAWSService":"false"}}"#, false),
        ("BoolIfExists on a missing key is true", #"{"BoolIfExists":{"aws:ViaAWSService":"false"}}"#, true),
        ("IpAddress in a range", #"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#, true),
        ("IpAddress, one address", #"{"IpAddress":{"aws:SourceIp":"10.1.2.3"}}"#, true),
        ("IpAddress out of range", #"{"IpAddress":{"aws:SourceIp":"192.168.0.0/16"}}"#, false),
        ("IpAddress, a /31 boundary", #"{"IpAddress":{"aws:SourceIp":"10.1.2.2/31"}}"#, true),
        ("NotIpAddress", #"{"NotIpAddress":{"aws:SourceIp":"192.168.0.0/16"}}"#, true),
        ("IpAddress with a malformed range", #"{"IpAddress":{"aws:SourceIp":"10.1.2.3/40"}}"#, false),
        ("ArnLike", #"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/a*"}}"#, true),
        ("ArnEquals", #"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/alice"}}"#, true),
        ("ArnNotLike", #"{"ArnNotLike":{"aws:PrincipalArn":"arn:aws:iam::*:user/alice"}}"#, false),
        ("ArnLike does not match across fields", #"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam:*"}}"#, false),
        ("Null true: the key is absent", #"{"Null":{"kms:EncryptionContext:absent":"true"}}"#, true),
        ("Null true on a present key", #"{"Null":{"kms:EncryptionContext:kmsfs:volume":"true"}}"#, false),
        ("Null false: the key is present", #"{"Null":{"kms:EncryptionContext:kmsfs:volume":"false"}}"#, true),
        ("ForAnyValue: one of the context keys", #"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"kmsfs:file"}}"#, true),
        ("ForAnyValue: none of them", #"{"ForAnyValue:StringEquals":{"kms:EncryptionContextKeys":"other"}}"#, false),
        ("ForAllValues: every context key is allowed", #"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["kmsfs:volume","kmsfs:file","x"]}}"#, true),
        ("ForAllValues: one context key is not", #"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["kmsfs:volume"]}}"#, false),
        ("ForAllValues on a missing key is true", #"{"ForAllValues:StringEquals":{"kms:EncryptionContextKeys:absent":"x"}}"#, true),
        ("ForAnyValue on a missing key is false", #"{"ForAnyValue:StringEquals":{"aws:TagKeys":"x"}}"#, false),
        ("ForAnyValue:StringNotEquals: some value differs", #"{"ForAnyValue:StringNotEquals":{"kms:EncryptionContextKeys":"kmsfs:volume"}}"#, true),
        ("ForAllValues:StringNotEquals: no value is listed", #"{"ForAllValues:StringNotEquals":{"kms:EncryptionContextKeys":"kmsfs:volume"}}"#, false),
        ("ForAllValues:StringLike", #"{"ForAllValues:StringLike":{"kms:EncryptionContextKeys":"kmsfs:*"}}"#, true),
        ("two keys under one operator must both hold", #"{"StringEquals":{"kms:CallerAccount":"111122223333","kms:ViaService":"other"}}"#, false),
        ("two operators must both hold", #"{"StringEquals":{"kms:CallerAccount":"111122223333"},"Bool":{"aws:SecureTransport":"true"}}"#, true),
        ("the least-privilege kmsfs mount", #"{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"v1","kms:ViaService":"kmsfs"},"ForAllValues:StringEquals":{"kms:EncryptionContextKeys":["kmsfs:volume","kmsfs:file"]}}"#, true),
    ]

    @Test(arguments: structure) func statements(_ c: Case) throws {
        #expect(Evaluator.evaluate(try Self.policy(c.statement), Self.request(c)) == c.expected)
    }

    @Test(arguments: conditions.map { Case(name: $0.0, statement: allowAlice($0.1), principal: alice, action: "kms:Decrypt",
                                           values: context, expected: $0.2 ? allowed : none) })
    func conditionOperators(_ c: Case) throws {
        #expect(Evaluator.evaluate(try Self.policy(c.statement), Self.request(c)) == c.expected)
    }

    /// A denying condition turns a Deny statement off, not into an allow.
    @Test func aDenyWhoseConditionFailsDoesNotApply() throws {
        let policy = try Self.policy(#"{"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"},{"Sid":"d","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#)
        let secure = AuthorizationRequest(principal: Self.alice, action: "kms:Decrypt", resource: Self.key, values: ["aws:SecureTransport": ["true"]])
        let plain = AuthorizationRequest(principal: Self.alice, action: "kms:Decrypt", resource: Self.key, values: ["aws:SecureTransport": ["false"]])
        #expect(Evaluator.evaluate(policy, secure) == .allowed(sid: "a", delegated: false))
        #expect(Evaluator.evaluate(policy, plain) == .denied(sid: "d"))
    }
}
