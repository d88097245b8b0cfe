import KMSFSCrypto

/// What a store should contain, declared ahead: accounts, their access keys, keys and aliases.
///
/// Seeding (``KMSEngine/seed(_:)``) makes what is missing and checks what exists against the
/// declaration, so the same seed can be applied at every start: existing entries are never
/// overwritten, and one that differs is a ``SeedError/conflict(entry:reason:)``. The file format
/// (YAML) belongs to kmsd; the engine sees only these types.
public struct Seed: Sendable {
    public struct Account: Sendable {
        public var id: String
        /// Compared with an existing account's name only when given.
        public var name: String?
        public var accessKeys: [AccessKey]
        public var keys: [Key]
        /// IAM users and roles, created first (access keys and key policies may name them).
        public var identities: [Identity]
        /// Custom key stores, found again by name; those marked `connect` are connected at start.
        public var customKeyStores: [CustomKeyStore]
        public init(id: String, name: String? = nil, accessKeys: [AccessKey] = [], keys: [Key] = [], identities: [Identity] = [],
                    customKeyStores: [CustomKeyStore] = []) {
            self.customKeyStores = customKeyStores
            self.id = id
            self.name = name
            self.accessKeys = accessKeys
            self.keys = keys
            self.identities = identities
        }
    }

    /// A user or role with its inline policies (and a role's trust policy), compared as written.
    public struct Identity: Sendable {
        public var kind: IdentityRecord.Kind
        public var name: String
        public var policies: [String: String]
        public var trustPolicy: String?
        public init(kind: IdentityRecord.Kind, name: String, policies: [String: String] = [:], trustPolicy: String? = nil) {
            self.kind = kind
            self.name = name
            self.policies = policies
            self.trustPolicy = trustPolicy
        }
    }

    /// A custom key store: CreateCustomKeyStore's settings (name included) and whether to connect it.
    public struct CustomKeyStore: Sendable {
        public var region: String
        public var settings: CustomKeyStoreSettings
        public var connect: Bool
        public init(region: String, settings: CustomKeyStoreSettings, connect: Bool) {
            self.region = region
            self.settings = settings
            self.connect = connect
        }
    }

    public struct AccessKey: Sendable {
        public var id: String
        public var secret: String
        /// An IAM-style user; nil for the account's root.
        public var user: String?
        public init(id: String, secret: String, user: String? = nil) {
            self.id = id
            self.secret = secret
            self.user = user
        }
    }

    /// A symmetric encryption key. It is found again by its ID or, without one, by its first alias.
    public struct Key: Sendable {
        public var id: String?
        public var region: String
        public var description: String
        public var tags: [Tag]
        /// Automatic rotation every so many days; nil for none.
        public var rotationPeriodInDays: Int?
        /// Given material, for tests whose ciphertexts (or MACs, signatures) must outlive the store:
        /// the key is then EXTERNAL, like one with imported material, and cannot rotate automatically.
        public var material: SecretBytes?
        public var aliases: [String]
        /// The key policy; nil for the default one.
        public var policy: String?
        /// The key spec and usage (default: SYMMETRIC_DEFAULT, and the spec's first usage). Given
        /// material is then the spec's: 32 bytes for AES, the digest's length for HMAC, PKCS#8 DER
        /// for a key pair.
        public var spec: KeySpec
        public var usage: KeyUsage?
        public init(id: String? = nil, region: String, description: String = "", tags: [Tag] = [],
                    rotationPeriodInDays: Int? = nil, material: SecretBytes? = nil, aliases: [String] = [], policy: String? = nil,
                    spec: KeySpec = .symmetricDefault, usage: KeyUsage? = nil) {
            self.spec = spec
            self.usage = usage
            self.policy = policy
            self.id = id
            self.region = region
            self.description = description
            self.tags = tags
            self.rotationPeriodInDays = rotationPeriodInDays
            self.material = material
            self.aliases = aliases
        }

        /// How errors name this entry.
        var name: String { id.map { "key \($0)" } ?? aliases.first.map { "key \($0)" } ?? "key without id or alias" }
    }

    public var accounts: [Account]
    public init(accounts: [Account]) { self.accounts = accounts }
}

/// What seeding did, entry by entry (accounts, access keys, keys and aliases, by name).
public struct SeedOutcome: Sendable, Equatable {
    public var created: [String] = []
    public var unchanged: [String] = []
}

/// Why a seed was refused; nothing of it was applied.
public enum SeedError: Error, Equatable, CustomStringConvertible {
    /// The entry exists and differs from the seed.
    case conflict(entry: String, reason: String)
    /// The entry is not valid (a malformed ID, secret, alias, setting).
    case invalid(entry: String, reason: String)

    public var description: String {
        switch self {
        case let .conflict(entry, reason): "seed conflict in \(entry): \(reason)"
        case let .invalid(entry, reason): "invalid seed entry \(entry): \(reason)"
        }
    }
}
