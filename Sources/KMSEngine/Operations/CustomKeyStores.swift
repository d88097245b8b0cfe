import Dispatch
import Foundation
import KMSFSCrypto

/// CreateCustomKeyStore's settings (AWS's members; the secret is `keyStorePassword` for a
/// CloudHSM-style store, the proxy's raw secret access key for an external one).
public struct CustomKeyStoreSettings: Sendable {
    public var name: String?
    public var type: CustomKeyStoreType?
    public var cloudHsmClusterID: String?
    public var trustAnchorCertificate: String?
    public var keyStorePassword: SecretBytes?
    public var xksProxyURIEndpoint: String?
    public var xksProxyURIPath: String?
    public var xksProxyConnectivity: String?
    public var xksProxyVpcEndpointServiceName: String?
    public var xksAccessKeyID: String?
    public var xksSecretAccessKey: SecretBytes?
    public init() {}
}

/// Custom key stores: an AWS_CLOUDHSM store is a PKCS#11 token (its cluster ID is the token's
/// label, its password the token user's PIN); an EXTERNAL_KEY_STORE store is an XKS proxy. Keys
/// made in one are AES-256 keys that never leave it; the engine seals its blobs through it.
extension KMSEngine {
    public func createCustomKeyStore(_ settings: CustomKeyStoreSettings, caller: Caller) throws -> String {
        try manage(.createCustomKeyStore, caller) { record, state in
            try authorizeAccount(.createCustomKeyStore, caller, in: state, record: &record)
            let (store, sealed) = try newCustomKeyStore(settings, account: caller.account, region: caller.region, in: state)
            state.customKeyStores[store.id] = (store, sealed)
            record.note = "custom key store \(store.id) (\(store.type.rawValue))"
            return (store.id, [.putCustomKeyStore(store, sealedSecret: sealed)])
        }
    }

    /// A new store from CreateCustomKeyStore's settings (or a seed's), validated as AWS does.
    func newCustomKeyStore(_ settings: CustomKeyStoreSettings, account: String, region: String, connected: Bool = false,
                           in state: EngineState) throws -> (CustomKeyStoreRecord, [UInt8]) {
        guard let name = settings.name else { throw KMSError(.validation, "CustomKeyStoreName is required") }
        try Validate.length(name, "customKeyStoreName", 1...256)
        let type = settings.type ?? .awsCloudHSM
        var store = CustomKeyStoreRecord(id: "cks-" + (try SecureRandom.bytes(count: 9)).map { String(format: "%02x", $0) }.joined().prefix(17),
                                         name: name, account: account, region: region, type: type,
                                         creationDate: clock.now(), connected: connected)
        let secret = try Self.apply(settings, to: &store, creating: true)
        try checkUnique(store, in: state)
        guard let secret else { throw KMSError(.validation, type == .awsCloudHSM ? "KeyStorePassword is required" : "XksProxyAuthenticationCredential is required") }
        try requireConnector(for: type)
        let sealed = try sealSecret(secret, of: &store)
        return (store, sealed)
    }

    public func describeCustomKeyStores(id: String?, name: String?, limit: Int? = nil, marker: String? = nil, caller: Caller) throws
        -> (stores: [CustomKeyStoreDescription], nextMarker: String?) {
        try perform(.describeCustomKeyStores, caller) { record, state in
            try authorizeAccount(.describeCustomKeyStores, caller, in: state, record: &record)
            var stores = state.customKeyStores.values.map(\.record).filter { $0.account == caller.account && $0.region == caller.region }
            if let id { stores = stores.filter { $0.id == id } }
            if let name { stores = stores.filter { $0.name == name } }
            if let wanted = id ?? name, stores.isEmpty {
                throw KMSError(.customKeyStoreNotFound, "Custom key store \(wanted) does not exist")
            }
            let (page, next) = try Paging.page(stores.sorted { $0.id < $1.id }, key: \.id, limit: limit, marker: marker)
            return (page.map(describe), next)
        }
    }

    /// ConnectCustomKeyStore: the store goes CONNECTING, and the connection (a token login, a
    /// proxy's health check: slow, or made slow by whoever runs the proxy) is made outside the
    /// management lock, which every change of every account waits for. The outcome is a state:
    /// CONNECTED (recorded, so that kmsd reconnects it at start), or FAILED with its code.
    public func connectCustomKeyStore(id: String, caller: Caller) throws {
        let claimed: (CustomKeyStoreRecord, [UInt8], Int)? = try manage(.connectCustomKeyStore, caller) { record, state in
            try authorizeAccount(.connectCustomKeyStore, caller, in: state, record: &record)
            let (store, sealed) = try customKeyStore(id, caller, in: state)
            try requireConnector(for: store.type)
            guard let attempt = keyStoreConnections.beginConnecting(id) else {
                let current = connectionState(store)
                guard current == .connected || current == .connecting else {
                    throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) is \(current.rawValue); disconnect it before connecting it again")
                }
                return (nil, [])
            }
            return ((store, sealed, attempt), [])
        }
        guard let (store, sealed, attempt) = claimed else { return }
        guard connect(store, sealed: sealed, attempt: attempt, operation: "ConnectCustomKeyStore", requestID: caller.requestID) else { return }
        try manage(Self.connectedOperation, caller) { record, state in
            record.note = "custom key store \(id) connected"
            guard case (var current, let sealed)? = state.customKeyStores[id], !current.connected, connectionState(current) == .connected else { return ((), []) }
            current.connected = true
            state.customKeyStores[id] = (current, sealed)
            return ((), [.putCustomKeyStore(current, sealedSecret: sealed)])
        }
    }

    /// The audit record of a connection ConnectCustomKeyStore made (after it, outside its lock).
    static let connectedOperation = "CustomKeyStoreConnected"

    public func disconnectCustomKeyStore(id: String, caller: Caller) throws {
        try manage(.disconnectCustomKeyStore, caller) { record, state in
            try authorizeAccount(.disconnectCustomKeyStore, caller, in: state, record: &record)
            var (store, sealed) = try customKeyStore(id, caller, in: state)
            guard connectionState(store) != .disconnected else {
                throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) is already DISCONNECTED")
            }
            keyStoreConnections.set(id, .init(connection: nil, state: .disconnected))
            store.connected = false
            state.customKeyStores[id] = (store, sealed)
            return ((), [.putCustomKeyStore(store, sealedSecret: sealed)])
        }
    }

    public func updateCustomKeyStore(id: String, newName: String?, _ settings: CustomKeyStoreSettings, caller: Caller) throws {
        try manage(.updateCustomKeyStore, caller) { record, state in
            try authorizeAccount(.updateCustomKeyStore, caller, in: state, record: &record)
            var (store, sealed) = try customKeyStore(id, caller, in: state)
            var changed = store
            if let cluster = settings.cloudHsmClusterID, cluster != store.cloudHsmClusterID,
               state.keys.values.contains(where: { $0.record.customKeyStoreID == id }) {
                // AWS takes only a cluster that shares the old one's backups; a token has no such
                // kin, and the store's keys are in the old one.
                throw KMSError(.cloudHsmClusterNotRelated, "Custom key store \(id) holds KMS keys, whose material is in \(store.cloudHsmClusterID ?? "its token"): its cluster cannot change")
            }
            if let newName {
                try Validate.length(newName, "newCustomKeyStoreName", 1...256)
                changed.name = newName
            }
            let secret = try Self.apply(settings, to: &changed, creating: false)
            if changed.cloudHsmClusterID != store.cloudHsmClusterID || changed.xksProxyURIEndpoint != store.xksProxyURIEndpoint
                || changed.xksProxyURIPath != store.xksProxyURIPath || changed.xksAccessKeyID != store.xksAccessKeyID || secret != nil {
                guard connectionState(store) == .disconnected else {
                    throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) must be DISCONNECTED to change anything but its name")
                }
            }
            try checkUnique(changed, in: state)
            if let secret { sealed = try sealSecret(secret, of: &changed) }
            state.customKeyStores[id] = (changed, sealed)
            return ((), [.putCustomKeyStore(changed, sealedSecret: sealed)])
        }
    }

    public func deleteCustomKeyStore(id: String, caller: Caller) throws {
        try manage(.deleteCustomKeyStore, caller) { record, state in
            try authorizeAccount(.deleteCustomKeyStore, caller, in: state, record: &record)
            let (store, _) = try customKeyStore(id, caller, in: state)
            guard connectionState(store) == .disconnected else {
                throw KMSError(.customKeyStoreInvalidState, "Custom key store \(id) must be DISCONNECTED to be deleted")
            }
            if state.keys.values.contains(where: { $0.record.customKeyStoreID == id }) {
                throw KMSError(.customKeyStoreHasCMKs, "Custom key store \(id) still holds KMS keys; delete them (ScheduleKeyDeletion) first")
            }
            state.customKeyStores[id] = nil
            keyStoreConnections.set(id, nil)
            return ((), [.deleteCustomKeyStore(id: id)])
        }
    }

    // MARK: - Shared

    /// The store `id` of the caller's account and Region.
    func customKeyStore(_ id: String, _ caller: Caller, in state: EngineState) throws(KMSError) -> (record: CustomKeyStoreRecord, sealedSecret: [UInt8]) {
        guard let entry = state.customKeyStores[id], entry.record.account == caller.account, entry.record.region == caller.region else {
            throw KMSError(.customKeyStoreNotFound, "Custom key store \(id) does not exist")
        }
        return entry
    }

    func connectionState(_ store: CustomKeyStoreRecord) -> ConnectionState {
        keyStoreConnections.entry(store.id)?.state ?? .disconnected
    }

    private func describe(_ store: CustomKeyStoreRecord) -> CustomKeyStoreDescription {
        let entry = keyStoreConnections.entry(store.id)
        return CustomKeyStoreDescription(
            id: store.id, name: store.name, type: store.type, creationDate: store.creationDate,
            connectionState: entry?.state ?? .disconnected, connectionErrorCode: entry?.state == .failed ? entry?.errorCode : nil,
            cloudHsmClusterID: store.cloudHsmClusterID, trustAnchorCertificate: store.trustAnchorCertificate,
            xksProxyURIEndpoint: store.xksProxyURIEndpoint, xksProxyURIPath: store.xksProxyURIPath,
            xksProxyConnectivity: store.xksProxyConnectivity, xksProxyVpcEndpointServiceName: store.xksProxyVpcEndpointServiceName,
            xksAccessKeyID: store.xksAccessKeyID)
    }

    func requireConnector(for type: CustomKeyStoreType) throws(KMSError) {
        guard let connector = customKeyStoreConnector, connector.supports(type) else {
            throw KMSError(.unsupportedOperation, type == .awsCloudHSM
                ? "This key service has no PKCS#11 module for AWS_CLOUDHSM key stores (start kmsd with --pkcs11-module)"
                : "This key service cannot reach external key store proxies")
        }
    }

    /// Opens the connection of a store in CONNECTING (no lock held) and records the outcome
    /// (CONNECTED, or FAILED with AWS's ConnectionErrorCode): a failure to connect is a state, not
    /// an error of the call, as in AWS. A Disconnect meanwhile wins. Returns whether it connected.
    @discardableResult
    func connect(_ store: CustomKeyStoreRecord, sealed: [UInt8], attempt: Int, operation: String, requestID: String) -> Bool {
        let call = ExternalCall(principal: "arn:aws:iam::\(store.account):root", keyARN: nil, operation: operation, requestID: requestID)
        do {
            guard let connector = customKeyStoreConnector, connector.supports(store.type) else {
                throw CustomKeyStoreFailure(.connection("INTERNAL_ERROR"), "no connector")
            }
            let secret: SecretBytes
            do { secret = try rootKey.open(sealed, label: store.secretLabel, version: 0) } catch {
                throw CustomKeyStoreFailure(.connection("INTERNAL_ERROR"), "the store's secret does not open")
            }
            let connection = try connector.connect(store.endpoint, secret: secret, call: call)
            return keyStoreConnections.finishConnecting(store.id, attempt: attempt, .init(connection: connection, state: .connected))
        } catch {
            let code: String
            if case let .connection(reason)? = (error as? CustomKeyStoreFailure)?.kind { code = reason } else { code = "INTERNAL_ERROR" }
            keyStoreConnections.finishConnecting(store.id, attempt: attempt, .init(connection: nil, state: .failed, errorCode: code))
            return false
        }
    }

    /// Connects, in the background, the stores their owners left connected (at start, after a
    /// seed): kmsd serves meanwhile, their keys Unavailable until connected.
    func reconnectCustomKeyStores() {
        let stores = state.withLock { $0.customKeyStores.values.filter { $0.record.connected } }
        let claimed = stores.compactMap { entry in keyStoreConnections.beginConnecting(entry.record.id).map { (entry.record, entry.sealedSecret, $0) } }
        guard !claimed.isEmpty else { return }
        DispatchQueue.global().async { [self] in
            for (store, sealed, attempt) in claimed { connect(store, sealed: sealed, attempt: attempt, operation: "KmsHealthCheck", requestID: "") }
        }
    }

    /// Seals a new secret of `store`, under a new binding (which `store`, to be written with it, takes).
    private func sealSecret(_ secret: SecretBytes, of store: inout CustomKeyStoreRecord) throws -> [UInt8] {
        store.secretBinding = try SecretBinding.make()
        return try rootKey.seal(secret, label: store.secretLabel, version: 0)
    }

    /// A store's name and proxy URI are each in use by one store of an account and Region; a
    /// cluster (a token of this host) by one store of the whole service, whatever the account:
    /// a token has one user PIN, and its keys are no other account's business.
    private func checkUnique(_ store: CustomKeyStoreRecord, in state: EngineState) throws(KMSError) {
        for (other, _) in state.customKeyStores.values where other.id != store.id {
            if let cluster = store.cloudHsmClusterID, other.cloudHsmClusterID == cluster {
                throw KMSError(.cloudHsmClusterInUse, other.account == store.account
                    ? "Cluster \(cluster) is already associated with custom key store \(other.id)"
                    : "Cluster \(cluster) is already associated with a custom key store")
            }
            guard other.account == store.account, other.region == store.region else { continue }
            if other.name == store.name { throw KMSError(.customKeyStoreNameInUse, "A custom key store named \(store.name) already exists") }
            if let endpoint = store.xksProxyURIEndpoint, other.xksProxyURIEndpoint == endpoint {
                if other.xksProxyURIPath == store.xksProxyURIPath {
                    throw KMSError(.xksProxyUriInUse, "\(endpoint)\(store.xksProxyURIPath ?? "") is already used by custom key store \(other.id)")
                }
            }
        }
    }

    /// Validates `settings` as AWS does and copies them onto `store`; returns the new secret, if any.
    private static func apply(_ settings: CustomKeyStoreSettings, to store: inout CustomKeyStoreRecord, creating: Bool) throws(KMSError) -> SecretBytes? {
        if let type = settings.type, type != store.type {
            throw KMSError(.validation, "CustomKeyStoreType cannot change")
        }
        switch store.type {
        case .awsCloudHSM:
            let xks = [settings.xksProxyURIEndpoint, settings.xksProxyURIPath, settings.xksProxyConnectivity, settings.xksAccessKeyID]
            guard xks.allSatisfy({ $0 == nil }) else {
                throw KMSError(.validation, "XksProxy settings apply only to a custom key store of type EXTERNAL_KEY_STORE")
            }
            if let cluster = settings.cloudHsmClusterID {
                guard (19...24).contains(cluster.count), cluster.hasPrefix("cluster-"),
                      cluster.dropFirst(8).allSatisfy({ $0.isASCII && ($0.isLetter || ("2"..."7").contains($0)) }) else {
                    throw KMSError.constraint(cluster, member: "cloudHsmClusterId", "Member must satisfy regular expression pattern: cluster-[2-7a-zA-Z]{11,16}")
                }
                store.cloudHsmClusterID = cluster
            } else if creating {
                throw KMSError(.validation, "CloudHsmClusterId is required for a custom key store of type AWS_CLOUDHSM")
            }
            if let anchor = settings.trustAnchorCertificate {
                try Validate.length(anchor, "trustAnchorCertificate", 1...5000)
                store.trustAnchorCertificate = anchor
            } else if creating {
                throw KMSError(.validation, "TrustAnchorCertificate is required for a custom key store of type AWS_CLOUDHSM")
            }
            if let password = settings.keyStorePassword { try Validate.sensitiveLength(password.count, member: "keyStorePassword", 7...32) }
            return settings.keyStorePassword
        case .externalKeyStore:
            guard settings.cloudHsmClusterID == nil, settings.trustAnchorCertificate == nil, settings.keyStorePassword == nil else {
                throw KMSError(.validation, "CloudHsmClusterId, TrustAnchorCertificate and KeyStorePassword apply only to AWS_CLOUDHSM key stores")
            }
            if let endpoint = settings.xksProxyURIEndpoint {
                try Validate.length(endpoint, "xksProxyUriEndpoint", 10...128)
                // AWS's pattern is ^https://[a-zA-Z0-9.-]+$; a self-hosted proxy may also name a port.
                let host = endpoint.dropFirst("https://".count)
                let parts = host.split(separator: ":", omittingEmptySubsequences: false)
                guard endpoint.hasPrefix("https://"), (1...2).contains(parts.count),
                      !parts[0].isEmpty, parts[0].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "." || $0 == "-") }),
                      parts.count == 1 || (Int(parts[1]).map { (1...65535).contains($0) } ?? false) else {
                    throw KMSError.constraint(endpoint, member: "xksProxyUriEndpoint", "Member must satisfy regular expression pattern: ^https://[a-zA-Z0-9.-]+(:port)?$")
                }
                store.xksProxyURIEndpoint = endpoint
            }
            if let path = settings.xksProxyURIPath {
                try Validate.length(path, "xksProxyUriPath", 10...128)
                guard Self.isXKSPath(path) else {
                    throw KMSError.constraint(path, member: "xksProxyUriPath",
                                              "Member must satisfy regular expression pattern: ^(/[a-zA-Z0-9\\/_-]+/kms/xks/v\\d{1,2})$|^(/kms/xks/v\\d{1,2})$")
                }
                store.xksProxyURIPath = path
            }
            if let connectivity = settings.xksProxyConnectivity {
                guard connectivity == "PUBLIC_ENDPOINT" || connectivity == "VPC_ENDPOINT_SERVICE" else {
                    throw KMSError.constraint(connectivity, member: "xksProxyConnectivity", "Member must satisfy enum value set: [VPC_ENDPOINT_SERVICE, PUBLIC_ENDPOINT]")
                }
                guard connectivity == "PUBLIC_ENDPOINT" else {
                    throw KMSError(.unsupportedOperation, "XksProxyConnectivity VPC_ENDPOINT_SERVICE needs an AWS VPC; a self-hosted key service reaches its proxy at a public (https) endpoint")
                }
                store.xksProxyConnectivity = connectivity
            }
            if let id = settings.xksAccessKeyID {
                guard (20...30).contains(id.count), id.allSatisfy({ ("A"..."Z").contains($0) || ("2"..."7").contains($0) }) else {
                    throw KMSError.constraint("***", member: "xksProxyAuthenticationCredential.accessKeyId", "Member must satisfy regular expression pattern: ^[A-Z2-7]+$ and have length 20-30")
                }
                guard let secret = settings.xksSecretAccessKey else { throw KMSError(.validation, "XksProxyAuthenticationCredential needs RawSecretAccessKey") }
                try Validate.sensitiveLength(secret.count, member: "xksProxyAuthenticationCredential.rawSecretAccessKey", 43...64)
                let valid = secret.withUnsafeBytes { $0.allSatisfy { byte in
                    (48...57).contains(byte) || (65...90).contains(byte) || (97...122).contains(byte) || byte == 0x2f || byte == 0x2b || byte == 0x3d } }
                guard valid else {
                    throw KMSError.constraint("***", member: "xksProxyAuthenticationCredential.rawSecretAccessKey", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9\\/+=]+$")
                }
                store.xksAccessKeyID = id
            } else if settings.xksSecretAccessKey != nil {
                throw KMSError(.validation, "XksProxyAuthenticationCredential needs AccessKeyId")
            }
            if creating {
                guard store.xksProxyURIEndpoint != nil, store.xksProxyURIPath != nil, store.xksProxyConnectivity != nil, store.xksAccessKeyID != nil else {
                    throw KMSError(.validation, "An EXTERNAL_KEY_STORE needs XksProxyUriEndpoint, XksProxyUriPath, XksProxyConnectivity and XksProxyAuthenticationCredential")
                }
            }
            return settings.xksSecretAccessKey
        }
    }

    /// `^(/[a-zA-Z0-9/_-]+/kms/xks/v\d{1,2})$|^(/kms/xks/v\d{1,2})$`
    static func isXKSPath(_ path: String) -> Bool {
        guard let range = path.range(of: "/kms/xks/v", options: .backwards) else { return false }
        let version = path[range.upperBound...]
        guard (1...2).contains(version.count), version.allSatisfy({ $0.isASCII && $0.isNumber }) else { return false }
        let prefix = path[..<range.lowerBound]
        return prefix.isEmpty || (prefix.count >= 2 && prefix.first == "/"
            && prefix.dropFirst().allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "/_-".contains($0)) })
    }
}
