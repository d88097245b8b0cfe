import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// The settings members CreateCustomKeyStore and UpdateCustomKeyStore share.
    static func customKeyStoreSettings(_ m: inout Members) throws(WireError) -> CustomKeyStoreSettings {
        var settings = CustomKeyStoreSettings()
        settings.type = try m.enumeration("CustomKeyStoreType", CustomKeyStoreType.self)
        settings.cloudHsmClusterID = try m.string("CloudHsmClusterId")
        settings.trustAnchorCertificate = try m.string("TrustAnchorCertificate")
        settings.keyStorePassword = try m.secretString("KeyStorePassword")
        settings.xksProxyURIEndpoint = try m.string("XksProxyUriEndpoint")
        settings.xksProxyURIPath = try m.string("XksProxyUriPath")
        settings.xksProxyConnectivity = try m.string("XksProxyConnectivity")
        settings.xksProxyVpcEndpointServiceName = try m.string("XksProxyVpcEndpointServiceName")
        _ = try m.string("XksProxyVpcEndpointServiceOwner")
        if var credential = try m.objectMembers("XksProxyAuthenticationCredential") {
            settings.xksAccessKeyID = try credential.requiredString("AccessKeyId")
            guard let secret = try credential.secretString("RawSecretAccessKey") else { throw Members.missing("RawSecretAccessKey") }
            settings.xksSecretAccessKey = secret
            try credential.finish()
        }
        return settings
    }

    /// CreateCustomKeyStore.
    static let createCustomKeyStore: Operation = { m, caller, engine in
        var settings = try customKeyStoreSettings(&m)
        settings.name = try m.requiredString("CustomKeyStoreName")
        try m.finish()
        return .object([("CustomKeyStoreId", .string(try engine.createCustomKeyStore(settings, caller: caller)))])
    }

    /// DescribeCustomKeyStores.
    static let describeCustomKeyStores: Operation = { m, caller, engine in
        let id = try m.string("CustomKeyStoreId")
        let name = try m.string("CustomKeyStoreName")
        let limit = try m.int("Limit")
        let marker = try m.string("Marker")
        try m.finish()
        let (stores, next) = try engine.describeCustomKeyStores(id: id, name: name, limit: limit, marker: marker, caller: caller)
        return .page("CustomKeyStores", stores.map(customKeyStoreEntry), nextMarker: next)
    }

    static func customKeyStoreEntry(_ s: CustomKeyStoreDescription) -> JSONValue {
        var members: [(String, JSONValue)] = [
            ("CustomKeyStoreId", .string(s.id)), ("CustomKeyStoreName", .string(s.name)),
            ("CustomKeyStoreType", .string(s.type.rawValue)), ("ConnectionState", .string(s.connectionState.rawValue)),
            ("CreationDate", .date(s.creationDate)),
        ]
        if let code = s.connectionErrorCode { members.append(("ConnectionErrorCode", .string(code))) }
        if let cluster = s.cloudHsmClusterID { members.append(("CloudHsmClusterId", .string(cluster))) }
        if let anchor = s.trustAnchorCertificate { members.append(("TrustAnchorCertificate", .string(anchor))) }
        if s.type == .externalKeyStore {
            var proxy: [(String, JSONValue)] = []
            if let value = s.xksProxyConnectivity { proxy.append(("Connectivity", .string(value))) }
            if let value = s.xksAccessKeyID { proxy.append(("AccessKeyId", .string(value))) }
            if let value = s.xksProxyURIEndpoint { proxy.append(("UriEndpoint", .string(value))) }
            if let value = s.xksProxyURIPath { proxy.append(("UriPath", .string(value))) }
            if let value = s.xksProxyVpcEndpointServiceName { proxy.append(("VpcEndpointServiceName", .string(value))) }
            members.append(("XksProxyConfiguration", .object(proxy)))
        }
        return .object(members)
    }

    /// ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore, DeleteCustomKeyStore.
    static func customKeyStoreChange(_ operation: KMSOperation) -> Operation {
        { m, caller, engine in
            let id = try m.requiredString("CustomKeyStoreId")
            switch operation {
            case .updateCustomKeyStore:
                let newName = try m.string("NewCustomKeyStoreName")
                let settings = try customKeyStoreSettings(&m)
                try m.finish()
                try engine.updateCustomKeyStore(id: id, newName: newName, settings, caller: caller)
            case .connectCustomKeyStore:
                try m.finish()
                try engine.connectCustomKeyStore(id: id, caller: caller)
            case .disconnectCustomKeyStore:
                try m.finish()
                try engine.disconnectCustomKeyStore(id: id, caller: caller)
            default:
                try m.finish()
                try engine.deleteCustomKeyStore(id: id, caller: caller)
            }
            return .empty
        }
    }
}
