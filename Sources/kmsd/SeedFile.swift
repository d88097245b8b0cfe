import ArgumentParser
import Foundation
import KMSEngine
import KMSFSCrypto
import KMSJSON
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
///         policy:                    # optional key policy (YAML or a JSON string); default: the account's
///           Version: "2012-10-17"
///           Statement: [...]
///     users:                         # optional IAM users with inline identity policies
///       - name: ci
///         policies:
///           use-app-key: {Version: "2012-10-17", Statement: [{Effect: Allow, Action: ["kms:Decrypt"], Resource: "*"}]}
///     roles:                         # optional IAM roles: trust policy and inline policies
///       - name: mount
///         trustPolicy: {Statement: [{Effect: Allow, Principal: {AWS: "111122223333"}, Action: "sts:AssumeRole"}]}
///         policies: {...}
///     customKeyStores:               # optional: found again by name; connect: true connects at start
///       - name: hsm
///         type: AWS_CLOUDHSM         # the cluster ID names a token of kmsd's --pkcs11-module
///         cloudHsmClusterId: cluster-abcdefghijk
///         trustAnchorCertificate: "-----BEGIN CERTIFICATE-----..."
///         keyStorePassword: kmsuser-pin
///         connect: true
///       - name: xks
///         type: EXTERNAL_KEY_STORE
///         xksProxyUriEndpoint: https://xks.example.com
///         xksProxyUriPath: /kms/xks/v1
///         xksProxyAccessKeyId: ABCDEFGHIJKLMNOPQRST
///         xksProxySecretAccessKey: <43-64 characters>
/// ```
/// An unknown setting is an error, like in the configuration file.
struct SeedFile: Decodable {
    struct Account: Decodable {
        var id: String
        var name: String?
        var accessKeys: [AccessKey]?
        var keys: [Key]?
        var users: [Identity]?
        var roles: [Identity]?
        var customKeyStores: [CustomKeyStore]?
    }

    struct Identity: Decodable {
        var name: String
        var policies: [String: PolicyDocument]?
        var trustPolicy: PolicyDocument?
    }

    /// A policy written as YAML (or JSON, which is YAML) or as a string holding JSON.
    struct PolicyDocument: Decodable {
        var text: String

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let string = try? container.decode(String.self) {
                text = string
            } else {
                text = String(decoding: try container.decode(AnyJSON.self).value.serialized, as: UTF8.self)
            }
        }
    }

    /// Any YAML value, as the JSON it means (for policies written as YAML).
    struct AnyJSON: Decodable {
        var value: JSONValue

        init(from decoder: any Decoder) throws {
            if var list = try? decoder.unkeyedContainer() {
                var items: [JSONValue] = []
                while !list.isAtEnd { items.append(try list.decode(AnyJSON.self).value) }
                value = .array(items)
            } else if let map = try? decoder.container(keyedBy: AnyKey.self) {
                value = .object(try map.allKeys.sorted { $0.stringValue < $1.stringValue }.map { ($0.stringValue, try map.decode(AnyJSON.self, forKey: $0).value) })
            } else {
                let single = try decoder.singleValueContainer()
                if single.decodeNil() { value = .null }
                else if let flag = try? single.decode(Bool.self) { value = .bool(flag) }
                else if let number = try? single.decode(Int.self) { value = .number(String(number)) }
                else { value = .string(try single.decode(String.self)) }
            }
        }
    }

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct AccessKey: Decodable {
        var id: String
        var secret: String
        var user: String?
    }

    struct CustomKeyStore: Decodable {
        var name: String
        var region: String?
        var type: String?
        var cloudHsmClusterId: String?
        var trustAnchorCertificate: String?
        var keyStorePassword: String?
        var xksProxyUriEndpoint: String?
        var xksProxyUriPath: String?
        var xksProxyAccessKeyId: String?
        var xksProxySecretAccessKey: String?
        var connect: Bool?
    }

    struct Key: Decodable {
        var id: String?
        var region: String?
        var description: String?
        var tags: [String: String]?
        var rotationPeriodInDays: Int?
        var material: String?
        var aliases: [String]?
        var policy: PolicyDocument?
        var spec: String?
        var usage: String?
    }

    var region: String?
    var accounts: [Account]

    /// The settings each level allows, for the unknown-setting check.
    static let allowed: [String: Set<String>] = [
        "": ["region", "accounts"],
        "accounts": ["id", "name", "accessKeys", "keys", "users", "roles", "customKeyStores"],
        "customKeyStores": ["name", "region", "type", "cloudHsmClusterId", "trustAnchorCertificate", "keyStorePassword",
                            "xksProxyUriEndpoint", "xksProxyUriPath", "xksProxyAccessKeyId", "xksProxySecretAccessKey", "connect"],
        "accessKeys": ["id", "secret", "user"],
        "keys": ["id", "region", "description", "tags", "rotationPeriodInDays", "material", "aliases", "policy", "spec", "usage"],
        "users": ["name", "policies"],
        "roles": ["name", "policies", "trustPolicy"],
    ]

    /// Reads the seed file at `path`.
    static func read(_ path: String) throws -> String {
        guard let text = FileManager.default.contents(atPath: path).map({ String(decoding: $0, as: UTF8.self) }) else {
            throw CommandFailure("cannot read the seed file \(path)")
        }
        return text
    }

    /// Checks a seed file's `text` (read from `path`) and turns it into the engine's ``Seed``.
    static func parse(_ text: String, path: String) throws -> Seed {
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
                keys: try keys(account, path: path, defaultRegion: defaultRegion),
                identities: (account.users ?? []).map { Seed.Identity(kind: .user, name: $0.name, policies: ($0.policies ?? [:]).mapValues(\.text)) }
                    + (account.roles ?? []).map {
                        Seed.Identity(kind: .role, name: $0.name, policies: ($0.policies ?? [:]).mapValues(\.text), trustPolicy: $0.trustPolicy?.text)
                    },
                customKeyStores: try (account.customKeyStores ?? []).map { store in
                    var settings = CustomKeyStoreSettings()
                    settings.name = store.name
                    settings.type = try store.type.map { text in
                        guard let type = CustomKeyStoreType(rawValue: text) else {
                            throw CommandFailure("\(path): custom key store \(store.name): type is AWS_CLOUDHSM or EXTERNAL_KEY_STORE, not \(text)")
                        }
                        return type
                    }
                    settings.cloudHsmClusterID = store.cloudHsmClusterId
                    settings.trustAnchorCertificate = store.trustAnchorCertificate
                    settings.keyStorePassword = store.keyStorePassword.map { SecretBytes(copying: Array($0.utf8)) }
                    settings.xksProxyURIEndpoint = store.xksProxyUriEndpoint
                    settings.xksProxyURIPath = store.xksProxyUriPath
                    settings.xksProxyConnectivity = store.xksProxyUriEndpoint == nil ? nil : "PUBLIC_ENDPOINT"
                    settings.xksAccessKeyID = store.xksProxyAccessKeyId
                    settings.xksSecretAccessKey = store.xksProxySecretAccessKey.map { SecretBytes(copying: Array($0.utf8)) }
                    return Seed.CustomKeyStore(region: store.region ?? defaultRegion, settings: settings, connect: store.connect ?? false)
                })
        })
    }

    func keys(_ account: Account, path: String, defaultRegion: String) throws -> [Seed.Key] {
        try (account.keys ?? []).map { key in
            var material: SecretBytes?
            if let text = key.material {
                guard var bytes = Data(base64Encoded: text).map(Array.init) else {
                    throw CommandFailure("\(path): the material of key \(key.id ?? key.aliases?.first ?? "?") is not base64")
                }
                material = SecretBytes(wiping: &bytes)
            }
            let name = key.id ?? key.aliases?.first ?? "?"
            let spec = try key.spec.map { text in
                guard let spec = KeySpec(rawValue: text) else { throw CommandFailure("\(path): key \(name): unknown spec \(text)") }
                return spec
            } ?? .symmetricDefault
            let usage = try key.usage.map { text in
                guard let usage = KeyUsage(rawValue: text) else { throw CommandFailure("\(path): key \(name): unknown usage \(text)") }
                return usage
            }
            return Seed.Key(id: key.id, region: key.region ?? defaultRegion, description: key.description ?? "",
                            tags: (key.tags ?? [:]).sorted { $0.key < $1.key }.map { Tag(tagKey: $0.key, tagValue: $0.value) },
                            rotationPeriodInDays: key.rotationPeriodInDays, material: material, aliases: key.aliases ?? [], policy: key.policy?.text,
                            spec: spec, usage: usage)
        }
    }
}

extension KMSEngine {
    /// Applies the seed file at `path` and says what it did; a conflict or invalid entry stops kmsd.
    func applySeed(from path: String) throws -> String {
        try applySeed(SeedFile.parse(SeedFile.read(path), path: path), path: path)
    }

    /// Applies `seed` (read from `path`) and says what it did, one line per created entry.
    func applySeed(_ seed: Seed, path: String) throws -> String {
        do {
            let outcome = try self.seed(seed)
            return (["kmsd: seed \(path): \(outcome.created.count) created, \(outcome.unchanged.count) unchanged"]
                + outcome.created.map { "kmsd: seed: created \($0)" }).joined(separator: "\n")
        } catch let error as SeedError {
            throw CommandFailure("\(path): \(error)")
        }
    }
}
