/// Every operation of the AWS KMS API that kmsd serves, declared once: its name (the wire's
/// `X-Amz-Target` suffix and the audit record's `operation`), the actions it is authorized as,
/// and whether it changes the store (the server then runs it off its event loops). The wire's
/// registry pairs each with its codec and handler, exhaustively; the engine refuses, in debug
/// builds, to authorize an action its operation does not declare.
public enum KMSOperation: String, CaseIterable, Sendable {
    case createKey = "CreateKey", describeKey = "DescribeKey", listKeys = "ListKeys"
    case updateKeyDescription = "UpdateKeyDescription", enableKey = "EnableKey", disableKey = "DisableKey"
    case scheduleKeyDeletion = "ScheduleKeyDeletion", cancelKeyDeletion = "CancelKeyDeletion", encrypt = "Encrypt"
    case decrypt = "Decrypt", reEncrypt = "ReEncrypt", generateDataKey = "GenerateDataKey"
    case generateDataKeyWithoutPlaintext = "GenerateDataKeyWithoutPlaintext", generateRandom = "GenerateRandom"
    case createAlias = "CreateAlias", updateAlias = "UpdateAlias", deleteAlias = "DeleteAlias", listAliases = "ListAliases"
    case tagResource = "TagResource", untagResource = "UntagResource", listResourceTags = "ListResourceTags"
    case enableKeyRotation = "EnableKeyRotation", disableKeyRotation = "DisableKeyRotation"
    case getKeyRotationStatus = "GetKeyRotationStatus", rotateKeyOnDemand = "RotateKeyOnDemand"
    case listKeyRotations = "ListKeyRotations", getKeyPolicy = "GetKeyPolicy", putKeyPolicy = "PutKeyPolicy"
    case listKeyPolicies = "ListKeyPolicies", createGrant = "CreateGrant", listGrants = "ListGrants"
    case listRetirableGrants = "ListRetirableGrants", retireGrant = "RetireGrant", revokeGrant = "RevokeGrant"
    case sign = "Sign", verify = "Verify", getPublicKey = "GetPublicKey", generateMac = "GenerateMac", verifyMac = "VerifyMac"
    case generateDataKeyPair = "GenerateDataKeyPair", generateDataKeyPairWithoutPlaintext = "GenerateDataKeyPairWithoutPlaintext"
    case deriveSharedSecret = "DeriveSharedSecret"
    case getParametersForImport = "GetParametersForImport", importKeyMaterial = "ImportKeyMaterial"
    case deleteImportedKeyMaterial = "DeleteImportedKeyMaterial", getKeyLastUsage = "GetKeyLastUsage"
    case createCustomKeyStore = "CreateCustomKeyStore", describeCustomKeyStores = "DescribeCustomKeyStores"
    case connectCustomKeyStore = "ConnectCustomKeyStore", disconnectCustomKeyStore = "DisconnectCustomKeyStore"
    case updateCustomKeyStore = "UpdateCustomKeyStore", deleteCustomKeyStore = "DeleteCustomKeyStore"
    case replicateKey = "ReplicateKey", updatePrimaryRegion = "UpdatePrimaryRegion"

    /// The actions a call is authorized as: its own, except ReEncrypt's two (the source key's
    /// ReEncryptFrom and the destination's ReEncryptTo, both decided before anything is decrypted)
    /// and ReplicateKey's (on the primary key, and CreateKey in the replica's Region).
    public var actions: [KMSAction] {
        switch self {
        case .reEncrypt: return [.reEncryptFrom, .reEncryptTo]
        // And the replica Region's CreateKey, as AWS requires both.
        case .replicateKey: return [.replicateKey, .createKey]
        default: return [KMSAction(rawValue: "kms:" + rawValue)!]
        }
    }

    /// Whether the operation changes the store (and waits for its fsync).
    public var writes: Bool {
        switch self {
        case .createKey, .updateKeyDescription, .enableKey, .disableKey, .scheduleKeyDeletion, .cancelKeyDeletion, .createAlias, .updateAlias, .deleteAlias, .tagResource, .untagResource, .enableKeyRotation, .disableKeyRotation, .rotateKeyOnDemand, .putKeyPolicy, .createGrant, .retireGrant, .revokeGrant, .importKeyMaterial, .deleteImportedKeyMaterial,
             .replicateKey, .updatePrimaryRegion:
            return true
        default: return false
        }
    }

    /// The request-rate quota it counts against (``RequestQuotas``), grouped as AWS KMS groups
    /// them.
    public var quotaClass: RequestQuotas.Class {
        switch self {
        case .encrypt, .decrypt, .reEncrypt, .generateDataKey, .generateDataKeyWithoutPlaintext, .generateRandom, .sign, .verify,
             .generateMac, .verifyMac, .deriveSharedSecret:
            return .cryptographic
        case .generateDataKeyPair, .generateDataKeyPairWithoutPlaintext: return .dataKeyPair
        default: return .management
        }
    }

    /// Whether it may take long without writing: RSA key generation (a data key pair, import
    /// parameters; RSA_4096 takes up to a second). The server runs these on a pool of their
    /// own, so that they cannot hold up the writes — a DisableKey, a RevokeGrant — behind them.
    public var slow: Bool {
        switch self {
        case .generateDataKeyPair, .generateDataKeyPairWithoutPlaintext, .getParametersForImport: return true
        default: return false
        }
    }
}
