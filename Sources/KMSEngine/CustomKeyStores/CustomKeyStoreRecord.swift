import Foundation

public enum CustomKeyStoreType: String, Sendable, Codable, CaseIterable {
    case awsCloudHSM = "AWS_CLOUDHSM"
    case externalKeyStore = "EXTERNAL_KEY_STORE"
}

public enum ConnectionState: String, Sendable, Codable, CaseIterable {
    case connected = "CONNECTED", connecting = "CONNECTING"
    case disconnected = "DISCONNECTED", disconnecting = "DISCONNECTING", failed = "FAILED"
}

/// A custom key store as the store persists it (its secret — the token user's password or the
/// proxy's secret access key — is sealed beside it under the root key, never in this JSON).
struct CustomKeyStoreRecord: Codable, Sendable, Equatable {
    var id: String
    var name: String
    var account: String
    var region: String
    var type: CustomKeyStoreType
    var creationDate: Date
    var cloudHsmClusterID: String?
    var trustAnchorCertificate: String?
    var xksProxyURIEndpoint: String?
    var xksProxyURIPath: String?
    var xksProxyConnectivity: String?
    var xksProxyVpcEndpointServiceName: String?
    var xksAccessKeyID: String?
    /// Connected by a ConnectCustomKeyStore that succeeded, and not disconnected since: kmsd
    /// reconnects such a store when it starts (a store whose connection failed is not retried).
    var connected: Bool

    var endpoint: CustomKeyStoreEndpoint {
        CustomKeyStoreEndpoint(id: id, type: type, region: region, cloudHsmClusterID: cloudHsmClusterID,
                               xksProxyURIEndpoint: xksProxyURIEndpoint, xksProxyURIPath: xksProxyURIPath, xksAccessKeyID: xksAccessKeyID)
    }

    /// The sealed secret this record goes with (``SecretBinding``): made anew with each new
    /// secret; nil in records written before.
    var secretBinding: String?

    /// What the secret is sealed under, with the record's binding.
    var secretLabel: String { SecretBinding.label("custom key store " + id, secretBinding) }
}

/// What DescribeCustomKeyStores returns for one store.
public struct CustomKeyStoreDescription: Sendable, Equatable {
    public var id: String
    public var name: String
    public var type: CustomKeyStoreType
    public var creationDate: Date
    public var connectionState: ConnectionState
    public var connectionErrorCode: String?
    public var cloudHsmClusterID: String?
    public var trustAnchorCertificate: String?
    public var xksProxyURIEndpoint: String?
    public var xksProxyURIPath: String?
    public var xksProxyConnectivity: String?
    public var xksProxyVpcEndpointServiceName: String?
    public var xksAccessKeyID: String?
}
