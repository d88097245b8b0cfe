import ArgumentParser
import Foundation
import KMSEngine
import KMSFSCrypto
import Yams

/// A seed file (YAML): accounts, access keys, keys and aliases that kmsd makes at start if they
/// are missing (`kmsd serve --seed FILE`, with or without `--dev`).
///
/// ```yaml
/// region: us-east-1                  # default region of the keys below
/// accounts:
///   - id: "111122223333"
///     name: dev                      # optional
///     accessKeys:
///       - id: AKIAIOSFODNN7EXAMPLE
///         secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY
///         user: ci                   # optional: arn:aws:iam::111122223333:user/ci
///     keys:
///       - id: 1234abcd-12ab-34cd-56ef-1234567890ab   # optional if it has an alias
///         description: app data
///         region: eu-west-1          # optional
///         tags: {team: storage}
///         rotationPeriodInDays: 365  # optional: automatic rotation
///         material: <base64 of 32 bytes>   # optional, for tests: an EXTERNAL key
///         aliases: [alias/app]
/// ```
/// An unknown setting is an error, like in the configuration file.
struct SeedFile: Decodable {
    struct Account: Decodable {
        var id: String
        var name: String?
        var accessKeys: [AccessKey]?
        var keys: [Key]?
    }

    struct AccessKey: Decodable {
        var id: String
        var secret: String
        var user: String?
    }

    struct Key: Decodable {
        var id: String?
        var region: String?
        var description: String?
        var tags: [String: String]?
        var rotationPeriodInDays: Int?
        var material: String?
        var aliases: [String]?
    }

    var region: String?
    var accounts: [Account]

    /// The settings each level allows, for the unknown-setting check.
    static let allowed: [String: Set<String>] = [
        "": ["region", "accounts"],
        "accounts": ["id", "name", "accessKeys", "keys"],
        "accessKeys": ["id", "secret", "user"],
        "keys": ["id", "region", "description", "tags", "rotationPeriodInDays", "material", "aliases"],
    ]

    /// Reads and checks `path`, and turns it into the engine's ``Seed``.
    static func load(_ path: String) throws -> Seed {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw CommandFailure("cannot read the seed file \(path)")
        }
        let file: SeedFile
        do {
            if let node = try Yams.compose(yaml: text) { try checkSettings(node, level: "", at: "") }
            file = try YAMLDecoder().decode(SeedFile.self, from: text)
        } catch {
            throw CommandFailure("\(path): \(error)")
        }
        return try file.seed(path: path)
    }

    /// Unknown settings, by where they are (`accounts[0].keys[1]`): a typo must not be ignored.
    static func checkSettings(_ node: Node, level: String, at path: String) throws {
        guard case let .mapping(mapping) = node, let allowed = allowed[level] else { return }
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            guard allowed.contains(name) else {
                throw CommandFailure("\(path.isEmpty ? "top level" : path): unknown setting \(name)")
            }
            if case let .sequence(items) = value, Self.allowed[name] != nil {
                for (index, item) in items.enumerated() {
                    try checkSettings(item, level: name, at: (path.isEmpty ? "" : path + ".") + "\(name)[\(index)]")
                }
            }
        }
    }

    func seed(path: String) throws -> Seed {
        let defaultRegion = region ?? "us-east-1"
        return Seed(accounts: try accounts.map { account in
            Seed.Account(
                id: account.id, name: account.name,
                accessKeys: (account.accessKeys ?? []).map { Seed.AccessKey(id: $0.id, secret: $0.secret, user: $0.user) },
                keys: try (account.keys ?? []).map { key in
                    var material: SecretBytes?
                    if let text = key.material {
                        guard var bytes = Data(base64Encoded: text).map(Array.init) else {
                            throw CommandFailure("\(path): the material of key \(key.id ?? key.aliases?.first ?? "?") is not base64")
                        }
                        material = SecretBytes(wiping: &bytes)
                    }
                    return Seed.Key(id: key.id, region: key.region ?? defaultRegion, description: key.description ?? "",
                                    tags: (key.tags ?? [:]).sorted { $0.key < $1.key }.map { Tag(tagKey: $0.key, tagValue: $0.value) },
                                    rotationPeriodInDays: key.rotationPeriodInDays, material: material, aliases: key.aliases ?? [])
                })
        })
    }
}

extension KMSEngine {
    /// Applies the seed file at `path`, printing what it did; a conflict or invalid entry stops kmsd.
    func applySeed(from path: String) throws {
        let seed = try SeedFile.load(path)
        do {
            let outcome = try self.seed(seed)
            print("kmsd: seed \(path): \(outcome.created.count) created, \(outcome.unchanged.count) unchanged")
            for entry in outcome.created { print("kmsd: seed: created \(entry)") }
        } catch let error as SeedError {
            throw CommandFailure("\(path): \(error)")
        }
    }
}
