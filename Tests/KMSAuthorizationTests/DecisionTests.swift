import KMSAuthorization
import Testing

/// The whole decision, as AWS KMS documents it ("Determining access to a KMS key"): key policy,
/// identity policies, cross-account use, grants with constraints, endpoint policies, explicit
/// deny. Each row is one situation and the outcome AWS gives, with the part of the reason that
/// says what decided.
@Suite struct DecisionTests {
    static let a = "111122223333", b = "444455556666"
    static let key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    static let alice = AuthorizationRequest.Principal(arn: "arn:aws:iam::\(a):user/alice", account: a)
    static let rootA = AuthorizationRequest.Principal(arn: "arn:aws:iam::\(a):root", account: a)
    static let mallory = AuthorizationRequest.Principal(arn: "arn:aws:iam::\(b):user/mallory", account: b)
    static let rootB = AuthorizationRequest.Principal(arn: "arn:aws:iam::\(b):root", account: b)
    static let session = AuthorizationRequest.Principal(arn: "arn:aws:sts::\(a):assumed-role/reader/host-1", account: a,
                                                        roleARN: "arn:aws:iam::\(a):role/reader")

    // Key policies, as statement lists.
    static let defaultPolicy = #"{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root"},"Action":"kms:*","Resource":"*"}"#
    static let aliceUses = #"{"Sid":"AliceUses","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":["kms:Decrypt","kms:Encrypt"],"Resource":"*"}"#
    static let denyAlice = #"{"Sid":"NoAlice","Effect":"Deny","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*"}"#
    static let accountB = #"{"Sid":"PartnerAccount","Effect":"Allow","Principal":{"AWS":"444455556666"},"Action":"kms:Decrypt","Resource":"*"}"#
    static let malloryDirect = #"{"Sid":"Mallory","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:user/mallory"},"Action":"kms:Decrypt","Resource":"*"}"#
    static let roleUses = #"{"Sid":"Reader","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:role/reader"},"Action":"kms:Decrypt","Resource":"*"}"#
    static let volumeOnly = #"{"Sid":"Volume","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:EncryptionContext:kmsfs:volume":"v1"}}}"#
    static let denyInsecure = #"{"Sid":"TLSOnly","Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#
    static let adminOnly = #"{"Sid":"Admin","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/admin"},"Action":"kms:*","Resource":"*"}"#

    // Identity policies (one statement each).
    static let idDecrypt = #"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*"}"#
    static let idDecryptThisKey = #"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:*:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"}"#
    static let idDecryptOtherKey = #"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:*:111122223333:key/other"}"#
    static let idEverything = #"{"Effect":"Allow","Action":"*","Resource":"*"}"#
    static let idDenyDecrypt = #"{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}"#
    static let idNotDecrypt = #"{"Effect":"Allow","NotAction":"kms:Decrypt","Resource":"*"}"#
    static let idEncrypt = #"{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"}"#
    static let idNotResource = #"{"Effect":"Allow","Action":"kms:*","NotResource":"arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab"}"#
    static let idCreateKey = #"{"Effect":"Allow","Action":"kms:CreateKey","Resource":"*"}"#
    static let idAliases = #"{"Effect":"Allow","Action":"kms:CreateAlias","Resource":"arn:aws:kms:us-east-1:111122223333:alias/app-*"}"#
    static let idOwnKeys = #"{"Effect":"Allow","Action":"iam:*AccessKey*","Resource":"arn:aws:iam::111122223333:user/${aws:username}"}"#
    static let idTLSOnly = #"{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":"true"}}}"#

    // Endpoint policies.
    static let endpointDecrypt = #"{"Sid":"DataKeys","Effect":"Allow","Principal":"*","Action":["kms:Decrypt","kms:GenerateDataKey"],"Resource":"*"}"#
    static let endpointAccountA = #"{"Sid":"OnlyA","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*","Condition":{"StringEquals":{"aws:PrincipalAccount":"111122223333"}}}"#
    static let endpointDenyDecrypt = #"{"Sid":"NoDecrypt","Effect":"Deny","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#
    static let endpointEverything = #"{"Sid":"All","Effect":"Allow","Principal":"*","Action":"*","Resource":"*"}"#
    static let endpointOtherKeys = #"{"Sid":"OtherKeys","Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"arn:aws:kms:*:111122223333:key/other"}"#

    // Grants.
    static let grantAliceDecrypt = Grant(id: "g-alice", grantee: "arn:aws:iam::111122223333:user/alice", actions: ["kms:Decrypt"])
    static let grantMallory = Grant(id: "g-mallory", grantee: "arn:aws:iam::444455556666:user/mallory", actions: ["kms:Decrypt", "kms:Encrypt"])
    static let grantRole = Grant(id: "g-role", grantee: "arn:aws:iam::111122223333:role/reader", actions: ["kms:Decrypt"])
    static let grantSubset = Grant(id: "g-subset", grantee: "arn:aws:iam::111122223333:user/alice", actions: ["kms:Decrypt", "kms:DescribeKey"],
                                   contextSubset: ["kmsfs:volume": "v1"])
    static let grantEquals = Grant(id: "g-equals", grantee: "arn:aws:iam::111122223333:user/alice", actions: ["kms:Decrypt"],
                                   contextEquals: ["kmsfs:volume": "v1"])

    struct Row: CustomTestStringConvertible, Sendable {
        var name: String
        var key: [String]?
        /// nil: the caller is an account root (no identity policies apply to it).
        var identity: [String]?
        var endpoint: [String]? = nil
        var grants: [Grant] = []
        var principal: AuthorizationRequest.Principal
        var action = "kms:Decrypt"
        var context: [String: String]? = nil
        var values: [String: [String]] = [:]
        /// The resource when it is not the key (an alias, an IAM user), for rows without a key policy.
        var resource: String? = nil
        var allowed: Bool
        var because: String
        var testDescription: String { name }
    }

    static func policy(_ statements: [String]) -> Policy {
        try! Policy(json: Array(#"{"Version":"2012-10-17","Statement":[\#(statements.joined(separator: ","))]}"#.utf8))
    }

    static func identityPolicy(_ statement: String) -> Policy {
        try! Policy(json: Array(#"{"Version":"2012-10-17","Statement":[\#(statement)]}"#.utf8), kind: .identity)
    }

    static func decide(_ row: Row) -> AccessDecision {
        var values = row.values
        if let context = row.context {
            for (name, value) in context { values["kms:EncryptionContext:" + name] = [value] }
            values["kms:EncryptionContextKeys"] = Array(context.keys)
        }
        values["aws:PrincipalAccount"] = [row.principal.account]
        let request = AuthorizationRequest(principal: row.principal, action: row.action, resource: row.resource ?? (row.key == nil ? "*" : key), values: values)
        return AccessEvaluation.decide(.init(
            request: request, resourceAccount: a, resourcePolicy: row.key.map(policy), resourcePolicyName: "key policy",
            identityPolicies: row.identity.map { $0.enumerated().map { ("p\($0.offset)", identityPolicy($0.element)) } },
            endpointPolicy: row.endpoint.map(policy), grants: row.grants, context: row.context))
    }

    static let keyPolicyAndIAM: [Row] = [
        Row(name: "default policy, account root", key: [defaultPolicy], identity: nil, principal: rootA, allowed: true, because: "Enable IAM User Permissions"),
        Row(name: "default policy, user without identity policy", key: [defaultPolicy], identity: [], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "default policy, user allowed by IAM", key: [defaultPolicy], identity: [idDecrypt], principal: alice, allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM allows this key", key: [defaultPolicy], identity: [idDecryptThisKey], principal: alice, allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM allows another key", key: [defaultPolicy], identity: [idDecryptOtherKey], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "default policy, IAM allows everything", key: [defaultPolicy], identity: [idEverything], principal: alice, allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM allows another action", key: [defaultPolicy], identity: [idEncrypt], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "default policy, IAM NotAction excludes it", key: [defaultPolicy], identity: [idNotDecrypt], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "default policy, IAM NotAction covers another", key: [defaultPolicy], identity: [idNotDecrypt], principal: alice, action: "kms:Encrypt", allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM NotResource excludes this key", key: [defaultPolicy], identity: [idNotResource], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "default policy, IAM deny wins over IAM allow", key: [defaultPolicy], identity: [idEverything, idDenyDecrypt], principal: alice, allowed: false, because: "explicit deny in identity policy"),
        Row(name: "default policy, IAM deny of another action", key: [defaultPolicy], identity: [idEverything, idDenyDecrypt], principal: alice, action: "kms:Encrypt", allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM condition holds", key: [defaultPolicy], identity: [idTLSOnly], principal: alice, values: ["aws:SecureTransport": ["true"]], allowed: true, because: "identity policy"),
        Row(name: "default policy, IAM condition fails", key: [defaultPolicy], identity: [idTLSOnly], principal: alice, values: ["aws:SecureTransport": ["false"]], allowed: false, because: "no identity policy"),
        Row(name: "key policy names the user: no IAM needed", key: [aliceUses], identity: [], principal: alice, allowed: true, because: "AliceUses"),
        Row(name: "key policy names the user for another action", key: [aliceUses], identity: [], principal: alice, action: "kms:GenerateDataKey", allowed: false, because: "no key policy"),
        Row(name: "key policy names the user, IAM denies", key: [aliceUses], identity: [idDenyDecrypt], principal: alice, allowed: false, because: "explicit deny in identity policy"),
        Row(name: "key policy without the account: IAM cannot allow", key: [adminOnly], identity: [idEverything], principal: alice, allowed: false, because: "no key policy"),
        Row(name: "key policy without the account: not even its root", key: [adminOnly], identity: nil, principal: rootA, allowed: false, because: "no key policy"),
        Row(name: "key policy deny beats its own allow", key: [defaultPolicy, aliceUses, denyAlice], identity: [idEverything], principal: alice, allowed: false, because: "explicit deny in the key policy"),
        Row(name: "key policy deny names the statement", key: [defaultPolicy, denyAlice], identity: [idEverything], principal: alice, allowed: false, because: "NoAlice"),
        Row(name: "key policy deny for alice leaves the root", key: [defaultPolicy, denyAlice], identity: nil, principal: rootA, allowed: true, because: "Enable IAM User Permissions"),
        Row(name: "key policy deny of Decrypt leaves Encrypt", key: [defaultPolicy, aliceUses, denyAlice], identity: [], principal: alice, action: "kms:Encrypt", allowed: true, because: "AliceUses"),
        Row(name: "a condition in the key policy holds", key: [volumeOnly], identity: [], principal: alice, context: ["kmsfs:volume": "v1"], allowed: true, because: "Volume"),
        Row(name: "a condition in the key policy fails", key: [volumeOnly], identity: [], principal: alice, context: ["kmsfs:volume": "v2"], allowed: false, because: "no key policy"),
        Row(name: "a condition on a context the call lacks", key: [volumeOnly], identity: [], principal: alice, context: [:], allowed: false, because: "no key policy"),
        Row(name: "a conditional deny applies over plain HTTP", key: [defaultPolicy, denyInsecure], identity: nil, principal: rootA, values: ["aws:SecureTransport": ["false"]], allowed: false, because: "TLSOnly"),
        Row(name: "a conditional deny lets TLS through", key: [defaultPolicy, denyInsecure], identity: nil, principal: rootA, values: ["aws:SecureTransport": ["true"]], allowed: true, because: "Enable IAM User Permissions"),
        Row(name: "a role's sessions, named by the role", key: [roleUses], identity: [], principal: session, allowed: true, because: "Reader"),
        Row(name: "a role's sessions under the default policy need the role's policy", key: [defaultPolicy], identity: [], principal: session, allowed: false, because: "no identity policy"),
        Row(name: "a role's sessions with the role's policy", key: [defaultPolicy], identity: [idDecrypt], principal: session, allowed: true, because: "identity policy"),
    ]

    static let crossAccount: [Row] = [
        Row(name: "another account, default policy: refused", key: [defaultPolicy], identity: nil, principal: rootB, allowed: false, because: "no key policy"),
        Row(name: "another account's user, default policy: refused", key: [defaultPolicy], identity: [idEverything], principal: mallory, allowed: false, because: "no key policy"),
        Row(name: "the key policy names account B: B's root may", key: [defaultPolicy, accountB], identity: nil, principal: rootB, allowed: true, because: "PartnerAccount"),
        Row(name: "the key policy names account B: its user needs B's IAM", key: [defaultPolicy, accountB], identity: [], principal: mallory, allowed: false, because: "no identity policy"),
        Row(name: "the key policy names account B: its user with B's IAM", key: [defaultPolicy, accountB], identity: [idDecrypt], principal: mallory, allowed: true, because: "PartnerAccount"),
        Row(name: "the key policy names account B for Decrypt only", key: [defaultPolicy, accountB], identity: [idEverything], principal: mallory, action: "kms:Encrypt", allowed: false, because: "no key policy"),
        Row(name: "the key policy names B's user directly: still needs B's IAM", key: [malloryDirect], identity: [], principal: mallory, allowed: false, because: "no identity policy"),
        Row(name: "the key policy names B's user directly, with B's IAM", key: [malloryDirect], identity: [idDecrypt], principal: mallory, allowed: true, because: "Mallory"),
        Row(name: "B's IAM denies what the key policy allows", key: [accountB], identity: [idEverything, idDenyDecrypt], principal: mallory, allowed: false, because: "explicit deny in identity policy"),
        Row(name: "B's IAM allows only another key", key: [accountB], identity: [idDecryptOtherKey], principal: mallory, allowed: false, because: "no identity policy"),
        Row(name: "account-level actions never cross accounts", key: nil, identity: nil, principal: rootB, action: "kms:CreateKey", allowed: false, because: "no identity policy"),
    ]

    static let accountLevel: [Row] = [
        Row(name: "CreateKey by the root", key: nil, identity: nil, principal: rootA, action: "kms:CreateKey", allowed: true, because: "account root"),
        Row(name: "CreateKey by a user with IAM", key: nil, identity: [idCreateKey], principal: alice, action: "kms:CreateKey", allowed: true, because: "identity policy"),
        Row(name: "CreateKey by a user without", key: nil, identity: [idDecrypt], principal: alice, action: "kms:CreateKey", allowed: false, because: "no identity policy"),
        Row(name: "ListKeys by a user with kms:*", key: nil, identity: [idEverything], principal: alice, action: "kms:ListKeys", allowed: true, because: "identity policy"),
        Row(name: "GenerateRandom by a user with a deny", key: nil, identity: [idEverything, #"{"Effect":"Deny","Action":"kms:GenerateRandom","Resource":"*"}"#], principal: alice, action: "kms:GenerateRandom", allowed: false, because: "explicit deny"),
        Row(name: "a session's role policy decides account actions", key: nil, identity: [idCreateKey], principal: session, action: "kms:CreateKey", allowed: true, because: "identity policy"),
        Row(name: "an endpoint policy limits account actions too", key: nil, identity: nil, endpoint: [endpointDecrypt], principal: rootA, action: "kms:CreateKey", allowed: false, because: "no endpoint policy"),
    ]

    static let grants: [Row] = [
        Row(name: "a grant allows on its own", key: [adminOnly], identity: [], grants: [grantAliceDecrypt], principal: alice, allowed: true, because: "grant g-alice"),
        Row(name: "a grant for another operation", key: [adminOnly], identity: [], grants: [grantAliceDecrypt], principal: alice, action: "kms:Encrypt", allowed: false, because: "no key policy"),
        Row(name: "a grant for someone else", key: [adminOnly], identity: [], grants: [grantMallory], principal: alice, allowed: false, because: "no key policy"),
        Row(name: "a cross-account grant needs no IAM of the grantee", key: [adminOnly], identity: [], grants: [grantMallory], principal: mallory, allowed: true, because: "grant g-mallory"),
        Row(name: "a grant does not beat an identity deny", key: [adminOnly], identity: [idDenyDecrypt], grants: [grantAliceDecrypt], principal: alice, allowed: false, because: "explicit deny in identity policy"),
        Row(name: "a grant does not beat a key policy deny", key: [adminOnly, denyAlice], identity: [], grants: [grantAliceDecrypt], principal: alice, allowed: false, because: "explicit deny in the key policy"),
        Row(name: "a grant to a role covers its sessions", key: [adminOnly], identity: [], grants: [grantRole], principal: session, allowed: true, because: "grant g-role"),
        Row(name: "a subset constraint met", key: [adminOnly], identity: [], grants: [grantSubset], principal: alice, context: ["kmsfs:volume": "v1", "kmsfs:file": "f"], allowed: true, because: "grant g-subset"),
        Row(name: "a subset constraint with the wrong value", key: [adminOnly], identity: [], grants: [grantSubset], principal: alice, context: ["kmsfs:volume": "v2"], allowed: false, because: "no key policy"),
        Row(name: "a subset constraint with no context", key: [adminOnly], identity: [], grants: [grantSubset], principal: alice, context: [:], allowed: false, because: "no key policy"),
        Row(name: "an equals constraint met exactly", key: [adminOnly], identity: [], grants: [grantEquals], principal: alice, context: ["kmsfs:volume": "v1"], allowed: true, because: "grant g-equals"),
        Row(name: "an equals constraint with an extra pair", key: [adminOnly], identity: [], grants: [grantEquals], principal: alice, context: ["kmsfs:volume": "v1", "x": "y"], allowed: false, because: "no key policy"),
        Row(name: "constraints do not bind DescribeKey", key: [adminOnly], identity: [], grants: [grantSubset], principal: alice, action: "kms:DescribeKey", allowed: true, because: "grant g-subset"),
        Row(name: "the key policy allows before any grant is looked at", key: [aliceUses], identity: [], grants: [grantAliceDecrypt], principal: alice, allowed: true, because: "AliceUses"),
        Row(name: "a grant and an endpoint policy that allows", key: [adminOnly], identity: [], endpoint: [endpointDecrypt], grants: [grantAliceDecrypt], principal: alice, allowed: true, because: "grant g-alice, endpoint policy"),
        Row(name: "a grant through an endpoint that does not allow", key: [adminOnly], identity: [], endpoint: [endpointOtherKeys], grants: [grantAliceDecrypt], principal: alice, allowed: false, because: "no endpoint policy"),
    ]

    static let endpoints: [Row] = [
        Row(name: "an endpoint allowing the action", key: [defaultPolicy], identity: nil, endpoint: [endpointDecrypt], principal: rootA, allowed: true, because: "endpoint policy"),
        Row(name: "an endpoint not allowing the action", key: [defaultPolicy], identity: nil, endpoint: [endpointDecrypt], principal: rootA, action: "kms:Encrypt", allowed: false, because: "no endpoint policy"),
        Row(name: "an endpoint denying the action", key: [defaultPolicy], identity: nil, endpoint: [endpointEverything, endpointDenyDecrypt], principal: rootA, allowed: false, because: "explicit deny in the endpoint policy"),
        Row(name: "an endpoint for account A's principals", key: [defaultPolicy, accountB], identity: nil, endpoint: [endpointAccountA], principal: rootB, allowed: false, because: "no endpoint policy"),
        Row(name: "an endpoint for account A, A's root", key: [defaultPolicy], identity: nil, endpoint: [endpointAccountA], principal: rootA, allowed: true, because: "endpoint policy"),
        Row(name: "an endpoint cannot widen the key policy", key: [adminOnly], identity: nil, endpoint: [endpointEverything], principal: rootA, allowed: false, because: "no key policy"),
        Row(name: "an endpoint cannot widen IAM", key: [defaultPolicy], identity: [], endpoint: [endpointEverything], principal: alice, allowed: false, because: "no identity policy"),
        Row(name: "an endpoint for other keys", key: [defaultPolicy], identity: nil, endpoint: [endpointOtherKeys], principal: rootA, allowed: false, because: "no endpoint policy"),
        Row(name: "no endpoint policy: nothing more to pass", key: [defaultPolicy], identity: nil, principal: rootA, allowed: true, because: "Enable IAM User Permissions"),
    ]

    // Trust policies (sts:AssumeRole on a role): the same rules, with the role's trust policy as
    // the resource policy.
    static let trustAccount = #"{"Sid":"Account","Effect":"Allow","Principal":{"AWS":"111122223333"},"Action":"sts:AssumeRole"}"#
    static let trustAlice = #"{"Sid":"Alice","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:user/alice"},"Action":"sts:AssumeRole"}"#
    static let trustPartner = #"{"Sid":"Partner","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole","Condition":{"StringEquals":{"sts:ExternalId":"x1"}}}"#
    static let idAssume = #"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/*"}"#
    static let idAssumeOther = #"{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"arn:aws:iam::111122223333:role/admin"}"#
    static let trust: [Row] = [
        Row(name: "trust names the account: its root", key: [trustAccount], identity: nil, principal: rootA, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: true, because: "Account"),
        Row(name: "trust names the account: a user needs IAM", key: [trustAccount], identity: [], principal: alice, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: false, because: "no identity policy"),
        Row(name: "trust names the account: a user with IAM", key: [trustAccount], identity: [idAssume], principal: alice, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: true, because: "identity policy"),
        Row(name: "trust names the account: IAM for another role", key: [trustAccount], identity: [idAssumeOther], principal: alice, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: false, because: "no identity policy"),
        Row(name: "trust names the user: no IAM needed", key: [trustAlice], identity: [], principal: alice, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: true, because: "Alice"),
        Row(name: "trust names someone else", key: [trustAlice], identity: [idEverything], principal: session, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: false, because: "no key policy"),
        Row(name: "trust for a partner with its external ID", key: [trustPartner], identity: nil, principal: rootB, action: "sts:AssumeRole", values: ["sts:ExternalId": ["x1"]], resource: "arn:aws:iam::111122223333:role/reader", allowed: true, because: "Partner"),
        Row(name: "trust for a partner without its external ID", key: [trustPartner], identity: nil, principal: rootB, action: "sts:AssumeRole", resource: "arn:aws:iam::111122223333:role/reader", allowed: false, because: "no key policy"),
        Row(name: "trust for a partner: its user needs the partner's IAM", key: [trustPartner], identity: [], principal: mallory, action: "sts:AssumeRole", values: ["sts:ExternalId": ["x1"]], resource: "arn:aws:iam::111122223333:role/reader", allowed: false, because: "no identity policy"),
    ]

    /// More of the combinations AWS documents: several identity policies, deny precedence across
    /// policies, NotPrincipal in key policies, resources in identity policies.
    static let combinations: [Row] = [
        Row(name: "the first of several identity policies allows", key: [defaultPolicy], identity: [idDecrypt, idEncrypt], principal: alice, allowed: true, because: "identity policy \"p0\""),
        Row(name: "the second of several identity policies allows", key: [defaultPolicy], identity: [idEncrypt, idDecrypt], principal: alice, allowed: true, because: "identity policy \"p1\""),
        Row(name: "a deny in the last identity policy still wins", key: [defaultPolicy], identity: [idDecrypt, idEncrypt, idDenyDecrypt], principal: alice, allowed: false, because: "explicit deny in identity policy \"p2\""),
        Row(name: "key policy deny beats the account root", key: [defaultPolicy, #"{"Sid":"NoRoot","Effect":"Deny","Principal":{"AWS":"111122223333"},"Action":"kms:ScheduleKeyDeletion","Resource":"*"}"#],
            identity: nil, principal: rootA, action: "kms:ScheduleKeyDeletion", allowed: false, because: "NoRoot"),
        Row(name: "key policy NotPrincipal deny spares the admin", key: [defaultPolicy, #"{"Sid":"OnlyAdmin","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/admin","arn:aws:iam::111122223333:root"]},"Action":"kms:PutKeyPolicy","Resource":"*"}"#],
            identity: nil, principal: rootA, action: "kms:PutKeyPolicy", allowed: true, because: "Enable IAM User Permissions"),
        Row(name: "key policy NotPrincipal deny catches alice", key: [defaultPolicy, #"{"Sid":"OnlyAdmin","Effect":"Deny","NotPrincipal":{"AWS":["arn:aws:iam::111122223333:user/admin","arn:aws:iam::111122223333:root"]},"Action":"kms:PutKeyPolicy","Resource":"*"}"#],
            identity: [idEverything], principal: alice, action: "kms:PutKeyPolicy", allowed: false, because: "OnlyAdmin"),
        Row(name: "key policy NotAction allow: everything but deletion", key: [#"{"Sid":"AllButDelete","Effect":"Allow","Principal":{"AWS":"111122223333"},"NotAction":"kms:ScheduleKeyDeletion","Resource":"*"}"#],
            identity: nil, principal: rootA, action: "kms:ScheduleKeyDeletion", allowed: false, because: "no key policy"),
        Row(name: "key policy NotAction allow: other actions pass", key: [#"{"Sid":"AllButDelete","Effect":"Allow","Principal":{"AWS":"111122223333"},"NotAction":"kms:ScheduleKeyDeletion","Resource":"*"}"#],
            identity: nil, principal: rootA, action: "kms:DisableKey", allowed: true, because: "AllButDelete"),
        Row(name: "Principal * with a CallerAccount condition: the account's user, directly", key: [#"{"Sid":"Account","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}}"#],
            identity: [], principal: alice, values: ["kms:CallerAccount": [a]], allowed: true, because: "Account"),
        Row(name: "Principal * with a CallerAccount condition: another account", key: [#"{"Sid":"Account","Effect":"Allow","Principal":{"AWS":"*"},"Action":"kms:Decrypt","Resource":"*","Condition":{"StringEquals":{"kms:CallerAccount":"111122223333"}}}"#],
            identity: [idEverything], principal: mallory, values: ["kms:CallerAccount": [b]], allowed: false, because: "no key policy"),
        Row(name: "Principal * without conditions: a stranger still needs its own IAM", key: [#"{"Sid":"Open","Effect":"Allow","Principal":"*","Action":"kms:Decrypt","Resource":"*"}"#],
            identity: [], principal: mallory, allowed: false, because: "no identity policy"),
        Row(name: "an identity policy on alias ARNs: a matching alias", key: nil, identity: [idAliases], principal: alice, action: "kms:CreateAlias",
            resource: "arn:aws:kms:us-east-1:111122223333:alias/app-1", allowed: true, because: "identity policy"),
        Row(name: "an identity policy on alias ARNs: another alias", key: nil, identity: [idAliases], principal: alice, action: "kms:CreateAlias",
            resource: "arn:aws:kms:us-east-1:111122223333:alias/db", allowed: false, because: "no identity policy"),
        Row(name: "an identity policy on the caller's own user: its own keys", key: nil, identity: [idOwnKeys], principal: alice, action: "iam:CreateAccessKey",
            values: ["aws:username": ["alice"]], resource: "arn:aws:iam::111122223333:user/alice", allowed: true, because: "identity policy"),
        Row(name: "an identity policy on the caller's own user: another's keys", key: nil, identity: [idOwnKeys], principal: alice, action: "iam:CreateAccessKey",
            values: ["aws:username": ["alice"]], resource: "arn:aws:iam::111122223333:user/bob", allowed: false, because: "no identity policy"),
        Row(name: "IAM actions of another account's user never pass", key: nil, identity: nil, principal: rootB, action: "iam:CreateAccessKey",
            resource: "arn:aws:iam::111122223333:user/alice", allowed: false, because: "no identity policy"),
    ]

    @Test(arguments: keyPolicyAndIAM + crossAccount + accountLevel + grants + endpoints + trust + combinations)
    func decision(_ row: Row) {
        let decision = Self.decide(row)
        #expect(decision.allowed == row.allowed, "\(decision.reason)")
        #expect(decision.reason.contains(row.because), "\(decision.reason)")
        if !row.allowed {
            #expect(decision.message?.hasPrefix("User: \(row.principal.arn) is not authorized to perform: \(row.action) on resource: ") == true)
        }
    }
}
