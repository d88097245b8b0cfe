import Foundation
import KMSClient
import KMSEngine

/// Where a mount or a command gets keys from: its own settings, never the backing directory's.
public struct KeyServiceOptions: Sendable, Equatable {
    /// A remote endpoint (`http://`, `https://`, `unix://`).
    public var endpoint: String?
    public var region: String?
    public var profile: String?
    /// The embedded key store's directory; `CIPHERDIR.keys` beside the volume when nil.
    public var keyStore: String?
    /// What unlocks the embedded store's root key, if it is protected.
    public var unlock: RootKeyUnlock
    public init(endpoint: String? = nil, region: String? = nil, profile: String? = nil, keyStore: String? = nil,
                unlock: RootKeyUnlock = RootKeyUnlock()) {
        self.endpoint = endpoint
        self.region = region
        self.profile = profile
        self.keyStore = keyStore
        self.unlock = unlock
    }
}

extension VolumeConfiguration {
    /// The client for this volume's key service, and the machine's record of the volume (for a
    /// remote one). The embedded engine calls as service `kmsfs` in the volume's account.
    ///
    /// A remote endpoint, region and profile come from `options`, else the machine's record of
    /// the volume, else the environment and `~/.aws` — never from `kmsfs.conf`.
    /// - Throws: ``VolumeError/keyService(_:)`` when `kmsfs.conf` names an endpoint that nothing
    ///   trusted confirms; the engine's errors for an embedded store that does not open.
    public func makeKeyClient(cipherDirectory: String, options: KeyServiceOptions = KeyServiceOptions()) throws
        -> (client: any KMSClient, record: TrustedVolume?) {
        switch keyService {
        case let .embedded(embedded):
            let store = EmbeddedStore.of(cipherDirectory: cipherDirectory, options: options)
            guard FileManager.default.fileExists(atPath: store.storePath) else {
                throw VolumeError.keyService("the volume's embedded key store is not at \(store.directory) (moved? name it with --key-store)")
            }
            let engine = try store.openEngine(options.unlock, schedulerInterval: .seconds(60))
            return (EmbeddedKMSClient(engine: engine, caller: Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs")), nil)
        case let .remote(hint):
            let record = TrustedVolume.load(volumeID: volumeID)
            let endpoint = options.endpoint ?? record?.endpoint
            let configuration: AWSConfiguration
            do {
                configuration = try AWSConfiguration.resolve(.init(endpoint: endpoint, region: options.region ?? record?.region,
                                                                   profile: options.profile ?? record?.profile))
            } catch {
                throw VolumeError.keyService("the key service settings are incomplete: \(error.message)")
            }
            if endpoint == nil, let named = hint.endpoint, named != configuration.endpoint {
                throw VolumeError.keyService("""
                    kmsfs.conf says this volume's keys are at \(named), but where keys go is never taken from the backing \
                    directory: name the key service with --kms-endpoint \(named) (or -o kms_endpoint=\(named), or \
                    AWS_ENDPOINT_URL_KMS); this machine then remembers it
                    """)
            }
            return (try HTTPKMSClient(configuration: configuration), record)
        }
    }
}
