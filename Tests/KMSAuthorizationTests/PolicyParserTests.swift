import KMSAuthorization
import Testing

/// Documents AWS refuses (MalformedPolicyDocumentException), and the shapes it accepts.
@Suite struct PolicyParserTests {
    static let refused: [(String, String)] = [
        ("not JSON", #"{"Version": "#),
        ("not an object", #"["Statement"]"#),
        ("no Statement", #"{"Version":"2012-10-17"}"#),
        ("an unknown version", #"{"Version":"2020-01-01","Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"}}"#),
        ("an unknown top-level element", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*"},"Extra":1}"#),
        ("an empty Statement list", #"{"Statement":[]}"#),
        ("no Effect", #"{"Statement":{"Principal":"*","Action":"kms:*"}}"#),
        ("an Effect other than Allow or Deny", #"{"Statement":{"Effect":"allow","Principal":"*","Action":"kms:*"}}"#),
        ("no Action", #"{"Statement":{"Effect":"Allow","Principal":"*"}}"#),
        ("Action and NotAction", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","NotAction":"kms:Decrypt"}}"#),
        ("an action without a service prefix", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"Decrypt"}}"#),
        ("no Principal in a key policy", #"{"Statement":{"Effect":"Allow","Action":"kms:*"}}"#),
        ("an invalid principal", #"{"Statement":{"Effect":"Allow","Principal":{"AWS":"alice"},"Action":"kms:*"}}"#),
        ("an unsupported principal type", #"{"Statement":{"Effect":"Allow","Principal":{"Federated":"x"},"Action":"kms:*"}}"#),
        ("duplicate Sids", #"{"Statement":[{"Sid":"a","Effect":"Allow","Principal":"*","Action":"kms:*"},{"Sid":"a","Effect":"Deny","Principal":"*","Action":"kms:*"}]}"#),
        ("an unknown statement element", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Actions":"kms:*"}}"#),
        ("an unknown condition operator", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"StringMatches":{"k":"v"}}}}"#),
        ("NullIfExists", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"NullIfExists":{"k":"true"}}}}"#),
        ("a condition value that is an object", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"StringEquals":{"k":{"x":1}}}}}"#),
        // An empty range once trapped the daemon at the lockout check (split of "" has no parts).
        ("an empty IpAddress", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"IpAddress":{"aws:SourceIp":""}}}}"#),
        ("an IpAddress of a slash", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"NotIpAddress":{"aws:SourceIp":"/"}}}}"#),
        ("a prefix longer than the address", #"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Condition":{"IpAddress":{"aws:SourceIp":"10.1.2.3/40"}}}}"#),
    ]

    @Test(arguments: refused.map(\.0)) func refusedWithAReason(_ name: String) {
        let text = Self.refused.first { $0.0 == name }!.1
        #expect(throws: PolicyError.self) { try Policy(json: Array(text.utf8)) }
    }

    @Test func limits() {
        let long = #"{"Statement":{"Sid":""# + String(repeating: "x", count: 33_000) + #"","Effect":"Allow","Principal":"*","Action":"kms:*"}}"#
        #expect(throws: PolicyError.self) { try Policy(json: Array(long.utf8)) }
    }

    @Test func identityPoliciesNameResourcesNotPrincipals() throws {
        #expect(throws: PolicyError.self) {
            try Policy(json: Array(#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"kms:*","Resource":"*"}}"#.utf8), kind: .identity)
        }
        #expect(throws: PolicyError.self) { try Policy(json: Array(#"{"Statement":{"Effect":"Allow","Action":"kms:*"}}"#.utf8), kind: .identity) }
        let policy = try Policy(json: Array(#"{"Statement":{"Effect":"Allow","Action":"kms:Decrypt","Resource":"arn:aws:kms:*:*:key/*"}}"#.utf8), kind: .identity)
        #expect(policy.statements.count == 1 && policy.statements[0].principal == nil)
    }

    @Test func singleStatementsAndStringsAreLists() throws {
        let policy = try Policy(json: Array(#"{"Version":"2012-10-17","Id":"key-default-1","Statement":{"Sid":"s","Effect":"Deny","Principal":{"AWS":["111122223333","arn:aws:iam::111122223333:role/r"],"Service":"kms.amazonaws.com"},"NotAction":"kms:Decrypt","Resource":"*","Condition":{"ForAnyValue:StringLikeIfExists":{"kms:EncryptionContextKeys":["a*","b"]}}}}"#.utf8))
        let statement = try #require(policy.statements.first)
        #expect(statement.effect == .deny && statement.sid == "s")
        #expect(statement.principal == .any(of: [.aws("111122223333"), .aws("arn:aws:iam::111122223333:role/r"), .service("kms.amazonaws.com")]))
        #expect(statement.action == .none(of: ["kms:Decrypt"]))
        let condition = try #require(statement.conditions.first)
        #expect(condition.operator == .stringLike && condition.qualifier == .forAnyValue && condition.ifExists && condition.values == ["a*", "b"])
    }
}
