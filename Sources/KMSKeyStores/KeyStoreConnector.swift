import Foundation
import KMSEngine
import KMSFSCrypto

/// kmsd's way to custom key stores: AWS_CLOUDHSM stores on tokens of one PKCS#11 module,
/// EXTERNAL_KEY_STORE stores through their XKS proxies.
public struct KeyStoreConnector: CustomKeyStoreConnector {
    /// The PKCS#11 module (a shared library) whose tokens back AWS_CLOUDHSM stores; nil for none.
    public var pkcs11Module: String?
    /// CAs (PEM) that XKS proxies' certificates are checked against; nil for the system's.
    public var xksCABundle: String?
    /// Per proxy call. AWS KMS allows a proxy 250 ms; a self-hosted proxy gets more.
    public var xksTimeout: TimeInterval = 2

    public init(pkcs11Module: String? = nil, xksCABundle: String? = nil) {
        self.pkcs11Module = pkcs11Module
        self.xksCABundle = xksCABundle
    }

    public func supports(_ type: CustomKeyStoreType) -> Bool {
        type == .externalKeyStore || pkcs11Module != nil
    }

    public func connect(_ store: CustomKeyStoreEndpoint, secret: SecretBytes, call: ExternalCall) throws(CustomKeyStoreFailure) -> any CustomKeyStoreConnection {
        switch store.type {
        case .awsCloudHSM:
            guard let module = pkcs11Module, let label = store.cloudHsmClusterID else {
                throw CustomKeyStoreFailure(.connection("INTERNAL_ERROR"), "no PKCS#11 module is configured")
            }
            do {
                return TokenConnection(token: try PKCS11Token(modulePath: module, tokenLabel: label, pin: secret))
            } catch {
                let code: String
                switch error.kind {
                case .tokenNotFound: code = "CLUSTER_NOT_FOUND"
                case .pinIncorrect: code = "INVALID_CREDENTIALS"
                case .pinLocked: code = "USER_LOCKED_OUT"
                default: code = "INTERNAL_ERROR"
                }
                throw CustomKeyStoreFailure(.connection(code), error.description)
            }
        case .externalKeyStore:
            let client = try XKSProxyClient(store: store, secret: secret, caBundle: xksCABundle, timeout: xksTimeout)
            let connection = ProxyConnection(client: client)
            try connection.checkHealth(call)
            return connection
        }
    }
}

/// An AWS_CLOUDHSM store: a logged-in token.
final class TokenConnection: CustomKeyStoreConnection {
    let token: PKCS11Token

    init(token: PKCS11Token) { self.token = token }

    private func failure(_ error: PKCS11Error) -> CustomKeyStoreFailure {
        switch error.kind {
        case .keyNotFound: return CustomKeyStoreFailure(.keyNotFound, error.description)
        case .authenticationFailed: return CustomKeyStoreFailure(.invalidCiphertext, error.description)
        default: return CustomKeyStoreFailure(.unavailable, error.description)
        }
    }

    func createKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure) {
        do { try token.generateKey(label: label) } catch { throw failure(error) }
    }

    func checkKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure) {
        do {
            guard try token.hasKey(label: label) else { throw CustomKeyStoreFailure(.keyNotFound, "no key labelled \(label)") }
        } catch let error as PKCS11Error { throw failure(error) } catch let error as CustomKeyStoreFailure { throw error } catch {
            throw CustomKeyStoreFailure(.unavailable, "\(error)")
        }
    }

    func seal(label: String, plaintext: SecretBytes, additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> (iv: [UInt8], sealed: [UInt8]) {
        do { return try token.seal(label: label, plaintext: plaintext, additionalData: additionalData) } catch { throw failure(error) }
    }

    func open(label: String, iv: [UInt8], sealed: [UInt8], additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> SecretBytes {
        do { return try token.open(label: label, iv: iv, sealed: sealed, additionalData: additionalData) } catch { throw failure(error) }
    }

    func random(count: Int) throws(CustomKeyStoreFailure) -> SecretBytes {
        do { return try token.random(count: count) } catch { throw failure(error) }
    }

    func deleteKey(label: String) throws(CustomKeyStoreFailure) {
        do { try token.destroyKey(label: label) } catch { throw failure(error) }
    }

    func close() { token.close() }
}
