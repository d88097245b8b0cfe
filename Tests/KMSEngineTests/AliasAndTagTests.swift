import Foundation
import Testing
@testable import KMSEngine

@Suite struct AliasAndTagTests {
    @Test func aliasLifecycle() throws {
        let f = try EngineFixture()
        let a = try f.createKey(), b = try f.createKey()
        try f.engine.createAlias(aliasName: "alias/one", targetKeyID: a.keyId, caller: f.caller)
        try f.engine.createAlias(aliasName: "alias/two", targetKeyID: a.arn, caller: f.caller)
        #expect(throws: KMSError.alreadyExists) { try f.engine.createAlias(aliasName: "alias/one", targetKeyID: b.keyId, caller: f.caller) }
        // Aliases are per account: the other account may use the same name for its own key.
        var other = CreateKeyRequest()
        other.description = "other"
        let otherKey = try f.engine.createKey(other, caller: f.otherAccount).keyMetadata
        try f.engine.createAlias(aliasName: "alias/one", targetKeyID: otherKey.keyId, caller: f.otherAccount)
        #expect(try f.engine.describeKey(keyID: "alias/one", caller: f.otherAccount).keyMetadata.keyId == otherKey.keyId)

        #expect(try f.engine.listAliases(caller: f.caller).aliases.map(\.aliasName) == ["alias/one", "alias/two"])
        #expect(try f.engine.listAliases(keyID: b.keyId, caller: f.caller).aliases.isEmpty)
        try f.engine.updateAlias(aliasName: "alias/two", targetKeyID: b.keyId, caller: f.caller)
        #expect(try f.engine.describeKey(keyID: "alias/two", caller: f.caller).keyMetadata.keyId == b.keyId)
        let listed = try f.engine.listAliases(keyID: b.arn, caller: f.caller).aliases
        #expect(listed.map(\.aliasArn) == ["arn:aws:kms:eu-west-1:111122223333:alias/two"])
        #expect(throws: KMSError.notFound) { try f.engine.updateAlias(aliasName: "alias/none", targetKeyID: b.keyId, caller: f.caller) }
        try f.engine.deleteAlias(aliasName: "alias/two", caller: f.caller)
        #expect(throws: KMSError.notFound) { try f.engine.describeKey(keyID: "alias/two", caller: f.caller) }
        #expect(throws: KMSError.notFound) { try f.engine.deleteAlias(aliasName: "alias/two", caller: f.caller) }
        // An alias cannot name an alias, nor a key pending deletion.
        #expect(throws: KMSError.validation) { try f.engine.createAlias(aliasName: "alias/three", targetKeyID: "alias/one", caller: f.caller) }
        _ = try f.engine.scheduleKeyDeletion(keyID: b.keyId, caller: f.caller)
        #expect(throws: KMSError.invalidState) { try f.engine.createAlias(aliasName: "alias/three", targetKeyID: b.keyId, caller: f.caller) }
    }

    /// AWS's answers, code and words, in AWS's order of checks (prefix, reserved, colon, pattern).
    static let badNames: [(String, KMSError.Code, String)] = [
        ("one", .validation, #"Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"#),
        ("wrongprefix/my-alias", .validation, "Invalid identifier"),
        ("alias/aws/mine", .notAuthorized, ""),
        ("alias/my:alias", .validation, "alias/my:alias contains invalid characters for an alias"),
        ("alias/has space", .validation, "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"),
        ("alias/ümlaut", .validation, "Member must satisfy regular expression pattern"),
        ("alias/", .validation, "Member must satisfy regular expression pattern"),
        ("alias/" + String(repeating: "x", count: 251), .validation, "Member must have length between 1 and 256"),
    ]

    @Test(arguments: badNames.map(\.0))
    func badAliasNames(name: String) throws {
        let (_, code, message) = Self.badNames.first { $0.0 == name }!
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        let error = try #require(throws: KMSError.self) { try f.engine.createAlias(aliasName: name, targetKeyID: key, caller: f.caller) }
        #expect(error.code == code && (message.isEmpty ? error.message.isEmpty : error.message.contains(message)), "\(error)")
        let deleting = try #require(throws: KMSError.self) { try f.engine.deleteAlias(aliasName: name, caller: f.caller) }
        #expect(deleting.code == code)
    }

    @Test func longestAliasNameIsAccepted() throws {
        let f = try EngineFixture()
        let name = "alias/" + String(repeating: "x", count: 250)
        try f.engine.createAlias(aliasName: name, targetKeyID: try f.createKey().keyId, caller: f.caller)
        #expect(try f.engine.describeKey(keyID: name, caller: f.caller).keyMetadata.keyState == .enabled)
    }

    @Test func tags() throws {
        let f = try EngineFixture()
        let key = try f.createKey().keyId
        try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: "team", tagValue: "storage"), Tag(tagKey: "env", tagValue: "test")], caller: f.caller)
        try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: "env", tagValue: "prod")], caller: f.caller)
        #expect(try f.engine.listResourceTags(keyID: key, caller: f.caller).tags
                == [Tag(tagKey: "env", tagValue: "prod"), Tag(tagKey: "team", tagValue: "storage")])
        let firstPage = try f.engine.listResourceTags(keyID: key, limit: 1, caller: f.caller)
        #expect(firstPage.tags.count == 1 && firstPage.truncated)
        #expect(try f.engine.listResourceTags(keyID: key, limit: 1, marker: firstPage.nextMarker, caller: f.caller).tags.map(\.tagKey) == ["team"])
        try f.engine.untagResource(keyID: key, tagKeys: ["team", "absent"], caller: f.caller)
        #expect(try f.engine.listResourceTags(keyID: key, caller: f.caller).tags.map(\.tagKey) == ["env"])
        #expect(throws: KMSError.tag) { try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: "", tagValue: "x")], caller: f.caller) }
        #expect(throws: KMSError.tag) {
            try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: String(repeating: "k", count: 129), tagValue: "x")], caller: f.caller)
        }
        #expect(throws: KMSError.tag) {
            try f.engine.tagResource(keyID: key, tags: [Tag(tagKey: "k", tagValue: String(repeating: "v", count: 257))], caller: f.caller)
        }
        #expect(throws: KMSError.limitExceeded) {
            try f.engine.tagResource(keyID: key, tags: (0..<50).map { Tag(tagKey: "t\($0)", tagValue: "") }, caller: f.caller)
        }
        try f.reopen()
        #expect(try f.engine.listResourceTags(keyID: key, caller: f.caller).tags.map(\.tagKey) == ["env"])
    }
}
