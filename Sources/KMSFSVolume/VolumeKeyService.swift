import Foundation
import KMSClient
import KMSEngine

extension VolumeConfiguration {
    /// The client for this volume's key service: the embedded engine on its store, or a remote
    /// endpoint with credentials resolved as the AWS SDKs do. The embedded engine calls as
    /// service `kmsfs` in the volume's account.
    public func makeKeyClient() throws -> any KMSClient {
        switch keyService {
        case let .embedded(embedded):
            let engine = try KMSEngine.open(path: embedded.storePath, rootKey: RootKey(loading: .file(embedded.rootKeyFile)))
            return EmbeddedKMSClient(engine: engine, caller: Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs"))
        case let .remote(remote):
            return try HTTPKMSClient(configuration: AWSConfiguration.resolve(.init(endpoint: remote.endpoint, region: remote.region,
                                                                                   profile: remote.profile)))
        }
    }
}
