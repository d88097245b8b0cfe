import KMSFSCrypto
import KMSStore

/// Durable storage for the key service: the one interface the engine writes through.
///
/// The engine keeps its working state in memory and hands the store a list of changes per
/// operation, applied atomically together with the audit records that describe them. SQLite is
/// the embedded implementation; a PostgreSQL one can implement the same protocol.
protocol KeyStore: Sendable {
    /// Whether the store says its records carry MACs (a store written before they did does not).
    func recordsAuthenticated() throws -> Bool
    /// From now on every record is written with its MAC and checked on load. With `upgrade`, the
    /// records of a store written before are given theirs first (the engine decides when that is
    /// genuine); without, a store that is not marked authenticated is refused.
    func authenticateRecords(with authenticator: RecordAuthenticator, upgrade: Bool) throws
    /// Everything persisted, read and checked whole.
    /// - Throws: ``StoreError`` naming a record whose MAC does not verify.
    func load() throws -> StoreContents
    /// What the engine's state is made from: the first call reads the store whole (as
    /// ``load()``); on a shared store, a later one returns only what changed since the previous
    /// call (``StoreContents/changed``) when the change feed can account for it, proven against
    /// the sealed digest — and reads the store whole otherwise. `generation` is the engine's
    /// state's: one behind the previous call's (its contents never installed) is not patched.
    func loadChanges(stateAt generation: Int64) throws -> StoreContents
    /// Whether other kmsd instances write this store at the same time (`kmsd serve --shared`).
    var shared: Bool { get }
    /// Applies `changes` and appends the audit records `seal` makes (and writes the trail's sealed
    /// head, `audit_head`, with them), in one transaction.
    ///
    /// The writers of a shared store take turns (a transaction-scoped lock): `seal` is given the
    /// trail's last record as the store holds it then, so that every instance's records join one
    /// chain; a store with one writer passes nil (its audit log knows the head). Changes are
    /// refused with ``StaleStateError`` unless the shared store is still at `generation`, the
    /// state they were drafted on: a conditional write, the draft's version against the store's.
    ///
    /// With `reauthenticating` (a rotation of the root key), every record is then given its MAC
    /// under that authenticator and the state digest is computed and sealed under it, in the same
    /// transaction; from then on it is the store's.
    /// - Returns: the store's generation after the transaction.
    @discardableResult
    func apply(_ changes: [StoreChange], basedOn generation: Int64?, reauthenticating: RecordAuthenticator?,
               audit seal: (AuditPosition?) throws -> AuditAppend) throws -> Int64
    /// Where a shared store is: its trail's last record and its generation (moved by every
    /// transaction that changes a record), both from the sealed state digest, checked; and the
    /// last record this instance has seen in it still there, with its MAC (else: cut or rolled back).
    func position() throws -> StorePosition
    /// Runs `body` holding the writers' turn of a shared store (a session-level hold of the lock
    /// every write transaction takes, reentrant for this session): no other instance commits
    /// until it returns. Just runs it for a store with one writer.
    func holdingTurn(_ body: () throws -> Void) throws
    /// Called once the engine has opened the store: a shared store without a state digest is
    /// refused from then on.
    func requireDigest()
    /// The engine refused what the last load returned (a key's material that does not open, a
    /// row missing): the next load reads the store whole rather than build on it.
    func distrustLastLoad()
    /// Every audit record, in order, for verification.
    func auditRecords(after sequence: Int64) throws -> [SealedAuditRecord]
    /// A value in the store's metadata table (schema version, root-key check, audit head).
    func metadata(_ name: String) throws -> [UInt8]?
}

extension KeyStore {
    /// Applies `changes` with `audit` sealed already (a store's own bookkeeping at open).
    func apply(_ changes: [StoreChange], audit: [SealedAuditRecord]) throws {
        try apply(changes, basedOn: nil) { _ in AuditAppend(records: audit, head: nil) }
    }

    @discardableResult
    func apply(_ changes: [StoreChange], basedOn generation: Int64?, audit seal: (AuditPosition?) throws -> AuditAppend) throws -> Int64 {
        try apply(changes, basedOn: generation, reauthenticating: nil, audit: seal)
    }
}

/// The last record of the audit trail: where the next one chains from.
struct AuditPosition: Equatable {
    var sequence: Int64
    var mac: [UInt8]
}

/// Where a shared store is (``KeyStore/position()``).
struct StorePosition: Equatable {
    var head: Int64
    var generation: Int64
    /// A rotation of the root key another instance announced (``KMSEngine/rotationAnnouncement``), read with the position.
    var announcement: [UInt8]? = nil
}

/// Audit records sealed for one transaction, and the trail's sealed head after them.
struct AuditAppend {
    var records: [SealedAuditRecord]
    var head: [UInt8]?
    /// Metadata the trail's records go with: a rotation's chain history (``StoreKeys``).
    var metadata: [(name: String, value: [UInt8])] = []
}

/// A shared store moved on (another instance committed a change) since the state a change was
/// drafted on: the engine loads the store again and drafts the change anew.
struct StaleStateError: Error, CustomStringConvertible {
    let expected: Int64
    let stored: Int64
    var description: String { "the store is at generation \(stored), the change was drafted at \(expected)" }
}

struct StoreContents {
    /// The generation these contents are (``KeyStore/generation()``), read in the same snapshot.
    var generation: Int64 = 0
    var keys: [KeyRecord]
    /// Sealed material by key and version.
    var sealedMaterial: [KeyIdentity: [UInt32: [UInt8]]]
    var aliases: [AliasRecord]
    var accounts: [AccountRecord]
    /// Access keys with their sealed secrets (upserted: a status change rewrites the row).
    var accessKeys: [(AccessKeyRecord, [UInt8])]
    var lastAudit: SealedAuditRecord?
    var grants: [GrantRecord]
    var identities: [IdentityRecord]
    /// Custom key stores with their sealed secrets.
    var customKeyStores: [(CustomKeyStoreRecord, [UInt8])] = []
    /// The store has no state digest yet: written before digests existed, or its digest removed.
    var stateDigestMissing = false
    /// Material rows sealed under their key ID alone (schema 1), to be sealed again under their
    /// key's identity: set by the migration, cleared with the re-seal.
    var legacyMaterialLabels = false
    /// Set when these contents are only what changed since the previous
    /// ``KeyStore/loadChanges()``: the rows named here that still exist are in the contents
    /// (keys with all their material), the others were deleted. Nil: everything.
    var changed: StoreDelta?
}

/// The rows a load from the change feed names, by what the engine keeps them under.
struct StoreDelta {
    /// Keys whose record or material changed.
    var keys: Set<KeyIdentity> = []
    var aliases: Set<EngineState.AliasID> = []
    var accounts: Set<String> = []
    var accessKeys: Set<String> = []
    /// Grants by ID, with the key each belongs to, as the last load saw it or as the row says
    /// now (nil: a grant gone that the last load did not see: made by this instance since).
    var grants: [String: KeyIdentity?] = [:]
    var identities: Set<String> = []
    var customKeyStores: Set<String> = []
}

enum StoreChange {
    case putKey(KeyRecord)
    case putMaterial(KeyIdentity, version: UInt32, sealed: [UInt8])
    /// One version's material of a key (imported material deleted or expired).
    case deleteMaterial(KeyIdentity, version: UInt32)
    /// A material row sealed again (under its key's identity), in place.
    case resealMaterial(KeyIdentity, version: UInt32, sealed: [UInt8])
    /// Removes the key, its material, its grants, and the aliases that point at it.
    case deleteKey(KeyIdentity)
    case putAlias(AliasRecord)
    case deleteAlias(account: String, region: String, aliasName: String)
    case putMetadata(name: String, value: [UInt8])
    case deleteMetadata(name: String)
    case putAccount(AccountRecord)
    case putAccessKey(AccessKeyRecord, sealedSecret: [UInt8])
    case deleteAccessKey(String)
    case putGrant(GrantRecord)
    case deleteGrant(grantID: String)
    /// A user or role, with its policies.
    case putIdentity(IdentityRecord)
    case deleteIdentity(arn: String)
    case putCustomKeyStore(CustomKeyStoreRecord, sealedSecret: [UInt8])
    case deleteCustomKeyStore(id: String)
}

extension SQLConnection {
    /// A value of the store's `meta` table, read on this connection (a reader beside kmsd: the
    /// audit verifier, a standby's anchor follower).
    func metadata(_ name: String) throws -> [UInt8]? {
        try query("SELECT value FROM meta WHERE name = ?1", [.text(name)]).first?.first?.blob
    }
}
