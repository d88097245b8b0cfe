import KMSFSCrypto

/// The engine's door to custom key stores. The engine knows neither PKCS#11 nor HTTP: kmsd
/// hands it a connector (module KMSKeyStores) that opens a PKCS#11 token for an AWS_CLOUDHSM
/// store and an XKS proxy client for an EXTERNAL_KEY_STORE one.
public protocol CustomKeyStoreConnector: Sendable {
    /// Whether this connector can reach stores of `type` at all (a PKCS#11 module configured...).
    func supports(_ type: CustomKeyStoreType) -> Bool
    /// Opens a connection: logs in to the token, or checks the proxy's health.
    /// - Throws: ``CustomKeyStoreFailure`` with kind `.connection(code)`, code one of AWS's ConnectionErrorCode values.
    func connect(_ store: CustomKeyStoreEndpoint, secret: SecretBytes, call: ExternalCall) throws(CustomKeyStoreFailure) -> any CustomKeyStoreConnection
}

/// A connected custom key store. Every key it holds is AES-256, used for AES-GCM with a 96-bit IV
/// and a 128-bit tag; the engine puts the IV and ciphertext ‖ tag in its own ciphertext blob.
public protocol CustomKeyStoreConnection: Sendable {
    /// Makes a new key labelled `label` inside the store (a PKCS#11 token; an external key
    /// store's keys are made by its owner, so this is not called for one).
    func createKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure)
    /// Checks that the store holds a usable AES-256 key `label` (an XKS key's GetKeyMetadata).
    func checkKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure)
    func seal(label: String, plaintext: SecretBytes, additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> (iv: [UInt8], sealed: [UInt8])
    func open(label: String, iv: [UInt8], sealed: [UInt8], additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> SecretBytes
    /// Random bytes from the store's own generator (a token's C_GenerateRandom).
    func random(count: Int) throws(CustomKeyStoreFailure) -> SecretBytes
    /// Destroys key `label` (a deleted KMS key's material in a token).
    func deleteKey(label: String) throws(CustomKeyStoreFailure)
    func close()
}

/// What a connector needs to reach one store (never its secret, which comes sealed from the store).
public struct CustomKeyStoreEndpoint: Sendable {
    public var id: String
    public var type: CustomKeyStoreType
    public var region: String
    /// AWS_CLOUDHSM: the cluster ID, which names the PKCS#11 token (its label).
    public var cloudHsmClusterID: String?
    /// EXTERNAL_KEY_STORE: where the proxy is, and the access key ID kmsd signs with.
    public var xksProxyURIEndpoint: String?
    public var xksProxyURIPath: String?
    public var xksAccessKeyID: String?
}

/// Who asks, for what: the request metadata an XKS proxy receives (and may authorize on).
public struct ExternalCall: Sendable {
    public var principal: String
    public var keyARN: String?
    public var operation: String
    public var requestID: String
}

/// A custom key store call that failed, classified for the engine's AWS error.
public struct CustomKeyStoreFailure: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Connecting failed; the payload is AWS's ConnectionErrorCode.
        case connection(String)
        case keyNotFound
        case keyInvalidConfiguration
        case invalidCiphertext
        /// The store answered something kmsd cannot use.
        case invalidResponse
        /// The store did not answer (or answered with its own failure).
        case unavailable
    }

    public let kind: Kind
    public let message: String
    public var description: String { message }

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }
}
