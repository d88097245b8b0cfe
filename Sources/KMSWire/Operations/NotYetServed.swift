import KMSEngine
import KMSJSON

extension KMSProtocol {
    static let customKeyStoreSettings = [
        "CloudHsmClusterId", "TrustAnchorCertificate", "KeyStorePassword", "CustomKeyStoreType", "XksProxyUriEndpoint",
        "XksProxyUriPath", "XksProxyVpcEndpointServiceName", "XksProxyVpcEndpointServiceOwner",
        "XksProxyAuthenticationCredential", "XksProxyConnectivity",
    ]

    /// CreateCustomKeyStore.
    static let createCustomKeyStore: Operation = { m, caller, engine in
        _ = try m.requiredString("CustomKeyStoreName")
        m.accept(customKeyStoreSettings)
        try m.finish()
        try engine.createCustomKeyStore(caller: caller)
    }

    /// DescribeCustomKeyStores.
    static let describeCustomKeyStores: Operation = { m, caller, engine in
        let id = try m.string("CustomKeyStoreId")
        let name = try m.string("CustomKeyStoreName")
        _ = try m.int("Limit")
        _ = try m.string("Marker")
        try m.finish()
        try engine.describeCustomKeyStores(id: id, name: name, caller: caller)
        return .page("CustomKeyStores", [], nextMarker: nil)
    }

    /// ConnectCustomKeyStore, DisconnectCustomKeyStore, UpdateCustomKeyStore, DeleteCustomKeyStore.
    static func customKeyStoreChange(_ operation: KMSOperation) -> Operation {
        { m, caller, engine in
            let id = try m.requiredString("CustomKeyStoreId")
            m.accept(customKeyStoreSettings + ["NewCustomKeyStoreName"])
            try m.finish()
            try engine.manageCustomKeyStore(operation, id: id, caller: caller)
        }
    }

    /// ReplicateKey and UpdatePrimaryRegion.
    static func multiRegionChange(_ operation: KMSOperation) -> Operation {
        { m, caller, engine in
            let keyID = try m.requiredString("KeyId")
            m.accept(["ReplicaRegion", "PrimaryRegion", "Policy", "BypassPolicyLockoutSafetyCheck", "Description", "Tags"])
            try m.finish()
            try engine.multiRegionChange(operation, keyID: keyID, caller: caller)
        }
    }
}
