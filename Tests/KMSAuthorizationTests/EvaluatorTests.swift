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
        ("IpAddress in a /8", #"{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}"#, true),
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

    /// What the engine sends for a CreateGrant, a tagged CreateKey, a ReEncrypt through an alias:
    /// every KMS and global condition key kmsd fills in.
    static let keyValues: [String: [String]] = [
        "kms:GrantOperations": ["Decrypt", "GenerateDataKey"], "kms:GranteePrincipal": ["arn:aws:iam::111122223333:role/host"],
        "kms:RetiringPrincipal": ["arn:aws:iam::111122223333:user/ops"], "kms:GrantConstraintType": ["EncryptionContextSubset"],
        "kms:GrantIsForAWSResource": ["false"], "kms:RequestAlias": ["alias/app"], "kms:ResourceAliases": ["alias/app", "alias/app-v2"],
        "kms:KeySpec": ["SYMMETRIC_DEFAULT"], "kms:KeyUsage": ["ENCRYPT_DECRYPT"], "kms:KeyOrigin": ["AWS_KMS"], "kms:MultiRegion": ["false"],
        "kms:EncryptionAlgorithm": ["SYMMETRIC_DEFAULT"], "kms:ViaService": ["kmsfs"], "kms:CallerAccount": [account],
        "kms:RotationPeriodInDays": ["365"], "kms:ScheduleKeyDeletionPendingWindowInDays": ["7"], "kms:BypassPolicyLockoutSafetyCheck": ["false"],
        "kms:ReEncryptOnSameKey": ["true"], "aws:PrincipalTag/team": ["storage"], "aws:ResourceTag/env": ["prod"],
        "aws:RequestTag/owner": ["alice"], "aws:TagKeys": ["owner", "cost"], "aws:PrincipalArn": ["arn:aws:iam::111122223333:user/alice"],
        "aws:PrincipalAccount": [account], "aws:PrincipalType": ["User"], "aws:username": ["alice"], "aws:SourceIp": ["2001:db8::7"],
        "aws:SecureTransport": ["false"], "aws:CurrentTime": ["2026-11-29T12:00:00Z"], "aws:EpochTime": ["1795953600"],
        "aws:RequestedRegion": ["us-east-1"], "aws:ViaAWSService": ["false"],
    ]

    static let conditionKeys: [(String, String, Bool)] = [
        ("kms:GrantOperations: every operation granted is allowed", #"{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt","GenerateDataKey","Encrypt"]}}"#, true),
        ("kms:GrantOperations: one is not", #"{"ForAllValues:StringEquals":{"kms:GrantOperations":["Decrypt"]}}"#, false),
        ("kms:GrantOperations: any of them", #"{"ForAnyValue:StringEquals":{"kms:GrantOperations":"GenerateDataKey"}}"#, true),
        ("kms:GranteePrincipal by role", #"{"StringLike":{"kms:GranteePrincipal":"arn:aws:iam::111122223333:role/*"}}"#, true),
        ("kms:GranteePrincipal, another account", #"{"StringLike":{"kms:GranteePrincipal":"arn:aws:iam::444455556666:*"}}"#, false),
        ("kms:RetiringPrincipal", #"{"StringEquals":{"kms:RetiringPrincipal":"arn:aws:iam::111122223333:user/ops"}}"#, true),
        ("kms:GrantConstraintType", #"{"StringEquals":{"kms:GrantConstraintType":"EncryptionContextSubset"}}"#, true),
        ("kms:GrantConstraintType, Equals required", #"{"StringEquals":{"kms:GrantConstraintType":"EncryptionContextEquals"}}"#, false),
        ("kms:GrantIsForAWSResource false", #"{"Bool":{"kms:GrantIsForAWSResource":"false"}}"#, true),
        ("kms:GrantIsForAWSResource true required", #"{"Bool":{"kms:GrantIsForAWSResource":"true"}}"#, false),
        ("kms:RequestAlias", #"{"StringEquals":{"kms:RequestAlias":"alias/app"}}"#, true),
        ("kms:RequestAlias with a pattern", #"{"StringLike":{"kms:RequestAlias":"alias/other*"}}"#, false),
        ("kms:ResourceAliases, any", #"{"ForAnyValue:StringLike":{"kms:ResourceAliases":"alias/app-*"}}"#, true),
        ("kms:ResourceAliases, all", #"{"ForAllValues:StringLike":{"kms:ResourceAliases":"alias/app*"}}"#, true),
        ("kms:ResourceAliases, all of another family", #"{"ForAllValues:StringLike":{"kms:ResourceAliases":"alias/db*"}}"#, false),
        ("kms:KeySpec", #"{"StringEquals":{"kms:KeySpec":"SYMMETRIC_DEFAULT"}}"#, true),
        ("kms:KeySpec, RSA only", #"{"StringLike":{"kms:KeySpec":"RSA_*"}}"#, false),
        ("kms:KeyUsage", #"{"StringEquals":{"kms:KeyUsage":"ENCRYPT_DECRYPT"}}"#, true),
        ("kms:KeyOrigin", #"{"StringEquals":{"kms:KeyOrigin":"EXTERNAL"}}"#, false),
        ("kms:MultiRegion", #"{"Bool":{"kms:MultiRegion":"false"}}"#, true),
        ("kms:EncryptionAlgorithm", #"{"StringEquals":{"kms:EncryptionAlgorithm":"SYMMETRIC_DEFAULT"}}"#, true),
        ("kms:EncryptionAlgorithm, RSA required", #"{"StringEquals":{"kms:EncryptionAlgorithm":"RSAES_OAEP_SHA_256"}}"#, false),
        ("kms:ViaService", #"{"StringEquals":{"kms:ViaService":"kmsfs"}}"#, true),
        ("kms:ViaService, another service", #"{"StringEquals":{"kms:ViaService":"s3.us-east-1.amazonaws.com"}}"#, false),
        ("kms:CallerAccount", #"{"StringEquals":{"kms:CallerAccount":"111122223333"}}"#, true),
        ("kms:RotationPeriodInDays at least 180", #"{"NumericGreaterThanEquals":{"kms:RotationPeriodInDays":"180"}}"#, true),
        ("kms:RotationPeriodInDays at most 90", #"{"NumericLessThanEquals":{"kms:RotationPeriodInDays":"90"}}"#, false),
        ("kms:ScheduleKeyDeletionPendingWindowInDays at least 30", #"{"NumericGreaterThanEquals":{"kms:ScheduleKeyDeletionPendingWindowInDays":"30"}}"#, false),
        ("kms:BypassPolicyLockoutSafetyCheck not set", #"{"Bool":{"kms:BypassPolicyLockoutSafetyCheck":"false"}}"#, true),
        ("kms:ReEncryptOnSameKey", #"{"Bool":{"kms:ReEncryptOnSameKey":"true"}}"#, true),
        ("aws:PrincipalTag", #"{"StringEquals":{"aws:PrincipalTag/team":"storage"}}"#, true),
        ("aws:PrincipalTag, key names are case-insensitive", #"{"StringEquals":{"aws:PrincipalTag/TEAM":"storage"}}"#, true),
        ("aws:PrincipalTag missing", #"{"StringEquals":{"aws:PrincipalTag/project":"x"}}"#, false),
        ("aws:ResourceTag", #"{"StringEquals":{"aws:ResourceTag/env":"prod"}}"#, true),
        ("aws:ResourceTag, another value", #"{"StringEquals":{"aws:ResourceTag/env":"dev"}}"#, false),
        ("aws:RequestTag", #"{"StringEquals":{"aws:RequestTag/owner":"alice"}}"#, true),
        ("aws:TagKeys, all allowed", #"{"ForAllValues:StringEquals":{"aws:TagKeys":["owner","cost","env"]}}"#, true),
        ("aws:TagKeys, one not", #"{"ForAllValues:StringEquals":{"aws:TagKeys":["owner"]}}"#, false),
        ("aws:PrincipalArn", #"{"ArnLike":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/*"}}"#, true),
        ("aws:PrincipalArn, ArnEquals another", #"{"ArnEquals":{"aws:PrincipalArn":"arn:aws:iam::111122223333:user/bob"}}"#, false),
        ("aws:PrincipalAccount", #"{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}"#, true),
        ("aws:PrincipalType", #"{"StringEquals":{"aws:PrincipalType":"AssumedRole"}}"#, false),
        ("aws:username", #"{"StringEquals":{"aws:username":"alice"}}"#, true),
        ("aws:SourceIp, IPv6 range", #"{"IpAddress":{"aws:SourceIp":"2001:db8::/32"}}"#, true),
        ("aws:SourceIp, IPv6 outside", #"{"IpAddress":{"aws:SourceIp":"2001:db9::/32"}}"#, false),
        ("aws:SourceIp, an IPv4 range never holds an IPv6 address", #"{"IpAddress":{"aws:SourceIp":"0.0.0.0/0"}}"#, false),
        ("aws:SecureTransport false", #"{"Bool":{"aws:SecureTransport":"true"}}"#, false),
        ("aws:CurrentTime before", #"{"DateLessThan":{"aws:CurrentTime":"2026-12-01T00:00:00Z"}}"#, true),
        ("aws:EpochTime", #"{"NumericGreaterThan":{"aws:EpochTime":"1700000000"}}"#, true),
        ("aws:RequestedRegion", #"{"StringEquals":{"aws:RequestedRegion":["eu-west-1","eu-central-1"]}}"#, false),
        ("aws:ViaAWSService", #"{"Bool":{"aws:ViaAWSService":"false"}}"#, true),
    ]

    @Test(arguments: conditionKeys.map { Case(name: $0.0, statement: allowAlice($0.1), principal: alice, action: "kms:Decrypt",
                                              values: keyValues, expected: $0.2 ? allowed : none) })
    func conditionKeysKMSFills(_ c: Case) throws {
        #expect(Evaluator.evaluate(try Self.policy(c.statement), Self.request(c)) == c.expected)
    }

    /// Policy variables in Resource (2012-10-17 policies): replaced by the request's values.
    static let variables: [(String, String, String, Bool)] = [
        ("${aws:username} in a resource", "2012-10-17", "arn:aws:iam::111122223333:user/${aws:username}", true),
        ("${aws:username} for another user", "2012-10-17", "arn:aws:iam::111122223333:user/${aws:username}x", false),
        ("a variable with no value matches nothing", "2012-10-17", "arn:aws:iam::111122223333:user/${aws:PrincipalTag/none}", false),
        ("variables are literal in 2008-10-17 policies", "2008-10-17", "arn:aws:iam::111122223333:user/${aws:username}", false),
        ("${*} is a literal star", "2012-10-17", "arn:aws:iam::111122223333:user/${*}", false),
        ("a value's star is not a wildcard", "2012-10-17", "arn:aws:iam::111122223333:user/${aws:PrincipalTag/star}", false),
    ]

    @Test(arguments: variables.map(\.0)) func policyVariables(_ name: String) throws {
        let (_, version, resource, expected) = Self.variables.first { $0.0 == name }!
        let policy = try Policy(json: Array(#"{"Version":"\#(version)","Statement":{"Effect":"Allow","Action":"iam:*","Resource":"\#(resource)"}}"#.utf8), kind: .identity)
        let request = AuthorizationRequest(principal: Self.alice, action: "iam:CreateAccessKey", resource: "arn:aws:iam::111122223333:user/alice",
                                           values: ["aws:username": ["alice"], "aws:PrincipalTag/star": ["*"]])
        #expect(Evaluator.evaluate(policy, request) == (expected ? .allowed(sid: nil, delegated: false) : .notApplicable))
    }

    @Test(arguments: structure) func statements(_ c: Case) throws {
        #expect(Evaluator.evaluate(try Self.policy(c.statement), Self.request(c)) == c.expected)
    }

    @Test(arguments: conditions.map { Case(name: $0.0, statement: allowAlice($0.1), principal: alice, action: "kms:Decrypt",
                                           values: context, expected: $0.2 ? allowed : none) })
    func conditionOperators(_ c: Case) throws {
        #expect(Evaluator.evaluate(try Self.policy(c.statement), Self.request(c)) == c.expected)
    }

    /// IAM's rule for a condition key the request does not carry: a positive operator is false,
    /// a negated one (StringNotEquals, NotIpAddress, ...) true, and `...IfExists` true for both —
    /// for every operator but Null, which tests presence itself.
    static let missingKeyRows: [(String, Bool)] = ConditionOperator.allCases.filter { $0 != .null }.flatMap { op in
        let negated = op.rawValue.contains("Not")
        return [(op.rawValue, negated), (op.rawValue + "IfExists", true)]
    }

    @Test(arguments: missingKeyRows.map(\.0)) func aMissingKey(_ name: String) throws {
        let expected = Self.missingKeyRows.first { $0.0 == name }!.1
        let value = name.hasPrefix("Ip") || name.hasPrefix("NotIp") ? "10.0.0.0/8" : name.hasPrefix("Arn") ? "arn:aws:iam::1:user/x" : "1"
        let policy = try Self.policy(Self.allowAlice(#"{"\#(name)":{"aws:absent":"\#(value)"}}"#))
        let request = AuthorizationRequest(principal: Self.alice, action: "kms:Decrypt", resource: Self.key, values: [:])
        #expect(Evaluator.evaluate(policy, request) == (expected ? Self.allowed : Self.none))
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
