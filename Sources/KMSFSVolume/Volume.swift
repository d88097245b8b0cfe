import Foundation
import KMSClient
import KMSFSFormat
import Logging
import Synchronization

/// An open volume, as a mount (or fsck) holds it: the lock, the verified configuration and the
/// key-service stack (client with logging, key pool for remote services, data-key cache).
///
/// Opening it is the mount's check that it can work: the volume is locked (one user at a time),
/// and the configuration's seal is verified with the key service — one real call with the
/// mount's credentials, so a wrong secret, region, endpoint, a disabled key or a service that is
/// down fails the mount at once with the service's reason.
public final class Volume: Sendable {
    public let cipherDirectory: String
    public let configuration: VolumeConfiguration
    public let keys: FileKeys
    /// How names are stored: nil for plaintext names.
    public let names: NameCipher?
    private let lock: VolumeLock
    private let client: any KMSClient
    private let trustedSealKey: String?
    /// False only for a mount made with `allow_offline` while the key service was unreachable:
    /// then nothing the configuration decides (keys of new files, directory keys, holes) is
    /// used until a key-service call verifies it (``requireVerified()``).
    private let verified: Atomic<Bool>
    private let logger: Logger
    /// The allowed keys' ARNs, resolved once (the configuration does not change while open).
    private let allowedARNs = Mutex<Set<String>?>(nil)

    /// Locks and opens the volume in `cipherDirectory`.
    /// - Parameters:
    ///   - allowOffline: mount even if the key service cannot be reached (files whose keys are
    ///     not cached cannot be opened until it can).
    ///   - pooled: keep a pool of pre-generated data keys (mounts of remote volumes).
    /// - Throws: ``VolumeError`` (in use, not a volume, tampered configuration, key service).
    public init(cipherDirectory: String, options: KeyServiceOptions = KeyServiceOptions(), allowOffline: Bool = false,
                pooled: Bool = true, logger: Logger = Logger(label: "kmsfs")) throws {
        self.cipherDirectory = cipherDirectory
        self.logger = logger
        lock = try VolumeLock(cipherDirectory: cipherDirectory)
        configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        let (plainClient, record) = try configuration.makeKeyClient(cipherDirectory: cipherDirectory, options: options)
        // Refused keys (disabled, pending deletion, no access) and an unreachable service are
        // logged with the key and its state: the errno alone does not say why an open failed.
        client = MeteredKMSClient(LoggedKMSClient(plainClient, logger: logger))
        trustedSealKey = record?.sealKeyARN
        if case .embedded = configuration.keyService {
            let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: options)
            if (try? store.protectionKind()) == .unprotected {
                logger.warning("the root key of \(store.directory) is stored unprotected (root.key): a copy of it with the volume decrypts every file; protect it with kmsfs protect")
            } else if store.hasStrayClearKey {
                logger.warning("\(store.rootKeyFile) holds a root key in the clear beside \(RootKeyRecord.fileName) (an interrupted kmsfs protect, or planted): it is not used; run kmsfs protect again to remove it")
            }
        }
        var isVerified = false
        do {
            try VolumeSeal.verify(configuration, client: client, expectedKeyARN: trustedSealKey)
            isVerified = true
        } catch let error as VolumeError {
            guard allowOffline, case .keyService = error else { throw error }
            logger.warning("mounting offline: \(error); new files and directory keys wait until the key service verifies the configuration")
        }
        verified = Atomic(isVerified)
        // Names cannot wait for the key service the way new files can: without the name key
        // no directory can even be listed.
        if configuration.nameKey != nil && !isVerified {
            throw VolumeError.keyService("a volume with encrypted names needs its key service at mount (its name key)")
        }
        names = try VolumeNames.cipher(configuration, client: client)
        var pool: KeyPool?
        // A remote service gets a key pool, so that creating a file does not wait for a round
        // trip; the embedded one answers in microseconds and a pool only competes for the cores
        // (docs/BENCHMARKS.md, KMS client).
        // (Bucket keys make a pool of per-file data keys unnecessary.)
        if pooled, configuration.bucketKeys == nil, case .remote = configuration.keyService {
            let volumeID = configuration.volumeID
            pool = KeyPool(client: client.forKeyPool(), keyID: configuration.defaultKeyID, size: 64, lowWater: 16, concurrency: 2) {
                FileKeys.context(volumeID: volumeID, fileID: $0)
            }
        }
        let cache = DataKeyCache()
        let (volumeID, keyClient) = (configuration.volumeID, client)
        let buckets = configuration.bucketKeys.map {
            BucketKeys(cipherDirectory: cipherDirectory, volumeID: volumeID, policy: $0, client: keyClient, cache: cache)
        }
        keys = FileKeys(volumeID: configuration.volumeID, chunkSize: configuration.chunkSize, client: client, pool: pool, cache: cache, buckets: buckets)
        if isVerified, case .remote = configuration.keyService {
            // Not remembering costs the next mount its flags, not this mount its keys.
            do { try remember(options: options, record: record) } catch {
                logger.warning("cannot record the volume's key service on this machine: \(error)")
            }
        }
    }

    /// What the configuration decides, once verified; before that (offline), the safe choices.
    public var holes: HolePolicy { verified.load(ordering: .relaxed) ? configuration.holes : .sealed }

    /// Throws unless the configuration has been verified, verifying it now if it has not.
    public func requireVerified() throws {
        if verified.load(ordering: .relaxed) { return }
        try VolumeSeal.verify(configuration, client: client, expectedKeyARN: trustedSealKey)
        verified.store(true, ordering: .relaxed)
        logger.info("the key service verified the volume's configuration")
    }

    /// Whether directories may name `keyID` for their new files.
    public func allows(_ keyID: String) -> Bool {
        keyID == configuration.defaultKeyID || configuration.allowedKeyIDs.contains(keyID)
    }

    /// The ARN of `keyID` if it is a key the configuration allows, however either names it (an
    /// alias, a key ID, an ARN: the key service resolves them); nil if it is not allowed.
    /// - Throws: ``KMSClientError`` if `keyID` cannot be resolved.
    ///
    /// Unless `resolving` (an operator's command), only the configured keys are resolved, never
    /// `keyID` itself unless it is one of them: whoever names a key through the mount must not be
    /// able to probe the key service with it.
    public func allowedKeyARN(_ keyID: String, resolving: Bool = false) throws -> String? {
        guard DirectoryKey.isWellFormed(Array(keyID.utf8)) else { return nil }
        if allows(keyID) { return try keys.keyARN(keyID) }
        let requested = resolving ? try keys.keyARN(keyID) : keyID
        let cached = allowedARNs.withLock { $0 }
        let allowed: Set<String>
        if let cached {
            allowed = cached
        } else {
            var resolved = Set<String>(), complete = true
            for configured in [configuration.defaultKeyID] + configuration.allowedKeyIDs {
                do { resolved.insert(try keys.keyARN(configured)) } catch { complete = false }
            }
            // A partial set is not kept: a key the service failed to resolve once must not stay refused.
            if complete { allowedARNs.withLock { $0 = resolved } }
            allowed = resolved
        }
        return allowed.first { KeyInventory.matches($0, requested) }
    }

    /// Records the key service this mount used, so that the next mount needs no flags and a
    /// changed `kmsfs.conf` cannot send it elsewhere. Only what the command line gave, or the
    /// record had, is kept; the rest stays with the environment.
    private func remember(options: KeyServiceOptions, record: TrustedVolume?) throws {
        let updated = TrustedVolume(endpoint: options.endpoint ?? record?.endpoint, region: options.region ?? record?.region,
                                    profile: options.profile ?? record?.profile, sealKeyARN: configuration.seal!.keyARN)
        if record == nil { logger.notice("first mount of volume \(configuration.volumeID) here: its configuration is sealed under \(updated.sealKeyARN); remembered") }
        if updated != record { try updated.save(volumeID: configuration.volumeID) }
    }
}
