import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine

/// Seeding: missing entries are made, existing ones are compared and never overwritten, a
/// conflict names its entry and applies nothing, and given material outlives the store.
@Suite struct SeedTests {
    static let appKeyID = "1234abcd-12ab-34cd-56ef-1234567890ab"
    static let material: [UInt8] = (0..<32).map { UInt8($0 &* 7 &+ 3) }

    static func seed(description: String = "app data", alias: String = "alias/app", material: [UInt8] = material) -> Seed {
        Seed(accounts: [
            Seed.Account(id: "111122223333", name: "dev",
                         accessKeys: [Seed.AccessKey(id: "AKIAIOSFODNN7EXAMPLE", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")],
                         keys: [Seed.Key(id: appKeyID, region: "eu-west-1", description: description, tags: [Tag(tagKey: "team", tagValue: "storage")],
                                         material: SecretBytes(copying: material), aliases: [alias]),
                                Seed.Key(region: "eu-west-1", description: "rotating", rotationPeriodInDays: 180, aliases: ["alias/rotating"])]),
            Seed.Account(id: "444455556666", accessKeys: [Seed.AccessKey(id: "AKIAI44QH8DHBEXAMPLE", secret: "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY", user: "ci")]),
        ])
    }

    @Test func createsOnceThenFindsEverythingUnchanged() throws {
        let f = try EngineFixture()
        let first = try f.engine.seed(Self.seed())
        #expect(first.created == ["account 111122223333", "access key AKIAIOSFODNN7EXAMPLE", "key \(Self.appKeyID)", "alias alias/app",
                                  "key alias/rotating", "alias alias/rotating", "account 444455556666", "access key AKIAI44QH8DHBEXAMPLE"])
        #expect(first.unchanged.isEmpty)
        try f.reopen()
        let second = try f.engine.seed(Self.seed())
        #expect(second.created.isEmpty && second.unchanged == first.created)

        let metadata = try f.engine.describeKey(keyID: "alias/app", caller: f.caller).keyMetadata
        #expect(metadata.keyId == Self.appKeyID && metadata.origin == .external && metadata.keyState == .enabled)
        let rotatingID = try f.engine.describeKey(keyID: "alias/rotating", caller: f.caller).keyMetadata.keyId
        let rotating = try f.engine.getKeyRotationStatus(keyID: rotatingID, caller: f.caller)
        #expect(rotating.keyRotationEnabled && rotating.rotationPeriodInDays == 180)
        #expect(f.engine.accessKey("AKIAI44QH8DHBEXAMPLE")?.record.principal == "arn:aws:iam::444455556666:user/ci")
    }

    /// Given material: a ciphertext made in one store decrypts in another store (another root
    /// key) seeded with the same material — what tests that keep ciphertexts across throwaway
    /// dev stores rely on.
    @Test func givenMaterialOutlivesTheStore() throws {
        let one = try EngineFixture(), two = try EngineFixture()
        try one.engine.seed(Self.seed())
        try two.engine.seed(Self.seed())
        let blob = try one.engine.encrypt(keyID: "alias/app", plaintext: secret("kept"), encryptionContext: ["a": "b"], caller: one.caller).ciphertextBlob
        let opened = try two.engine.decrypt(ciphertextBlob: blob, encryptionContext: ["a": "b"], caller: two.caller)
        #expect(opened.plaintext == secret("kept"))
    }

    @Test func aConflictNamesItsEntryAndAppliesNothing() throws {
        let f = try EngineFixture()
        try f.engine.seed(Self.seed())
        let cases: [(Seed, SeedError)] = [
            (Self.seed(description: "changed"), .conflict(entry: "key \(Self.appKeyID)", reason: "it exists with a different description")),
            (Self.seed(material: [UInt8](repeating: 1, count: 32)), .conflict(entry: "key \(Self.appKeyID)", reason: "it exists with a different material")),
            (Self.seed(alias: "alias/rotating"), .conflict(entry: "alias alias/rotating", reason: "")),
            (Seed(accounts: [Seed.Account(id: "111122223333", name: "renamed")]),
             .conflict(entry: "account 111122223333", reason: "it exists named \"dev\"; the seed says \"renamed\"")),
            (Seed(accounts: [Seed.Account(id: "111122223333", accessKeys: [Seed.AccessKey(id: "AKIAIOSFODNN7EXAMPLE", secret: String(repeating: "x", count: 40))])]),
             .conflict(entry: "access key AKIAIOSFODNN7EXAMPLE", reason: "it exists with a different secret")),
        ]
        for (seed, expected) in cases {
            let error = try #require(throws: SeedError.self) { try f.engine.seed(seed) }
            switch (error, expected) {
            case let (.conflict(entry, reason), .conflict(expectedEntry, expectedReason)):
                #expect(entry == expectedEntry)
                #expect(expectedReason.isEmpty || reason == expectedReason)
            default:
                Issue.record("expected \(expected), got \(error)")
            }
        }
        // A seed whose last entry conflicts applies none of the entries before it.
        var partly = Self.seed(description: "changed")
        partly.accounts.insert(Seed.Account(id: "777788889999"), at: 0)
        #expect(throws: SeedError.self) { try f.engine.seed(partly) }
        #expect(!f.engine.listAccounts().contains { $0.accountID == "777788889999" })
    }

    @Test func invalidEntriesAreRefusedByName() throws {
        let f = try EngineFixture()
        let account = { (keys: [Seed.Key], accessKeys: [Seed.AccessKey]) in Seed(accounts: [Seed.Account(id: "111122223333", accessKeys: accessKeys, keys: keys)]) }
        let cases: [(Seed, String)] = [
            (Seed(accounts: [Seed.Account(id: "12345")]), "account 12345"),
            (account([], [Seed.AccessKey(id: "AKIA-NOT-VALID-ID", secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")]), "access key AKIA-NOT-VALID-ID"),
            (account([], [Seed.AccessKey(id: "AKIAIOSFODNN7EXAMPLE", secret: "test")]), "access key AKIAIOSFODNN7EXAMPLE"),
            (account([Seed.Key(id: "NOT-A-UUID", region: "eu-west-1")], []), "key NOT-A-UUID"),
            (account([Seed.Key(region: "eu-west-1")], []), "key without id or alias"),
            (account([Seed.Key(region: "eu-west-1", material: SecretBytes(copying: [1, 2, 3]), aliases: ["alias/short"])], []), "key alias/short"),
            (account([Seed.Key(region: "eu-west-1", rotationPeriodInDays: 10, aliases: ["alias/fast"])], []), "key alias/fast"),
            (account([Seed.Key(region: "eu-west-1", aliases: ["alias/aws/reserved"])], []), "alias alias/aws/reserved"),
        ]
        for (seed, entry) in cases {
            let error = try #require(throws: SeedError.self) { try f.engine.seed(seed) }
            guard case let .invalid(named, _) = error else { Issue.record("expected invalid \(entry), got \(error)"); continue }
            #expect(named == entry)
        }
        #expect(f.engine.listAccounts().isEmpty)
    }
}
