/// AWS KMS enumerations, with AWS's spelling as raw values.

public enum KeyState: String, Sendable, Codable, CaseIterable {
    case creating = "Creating"
    case enabled = "Enabled"
    case disabled = "Disabled"
    case pendingDeletion = "PendingDeletion"
    case pendingImport = "PendingImport"
    case pendingReplicaDeletion = "PendingReplicaDeletion"
    case unavailable = "Unavailable"
    case updating = "Updating"
}

public enum KeyUsage: String, Sendable, Codable, CaseIterable {
    case encryptDecrypt = "ENCRYPT_DECRYPT"
    case signVerify = "SIGN_VERIFY"
    case generateVerifyMAC = "GENERATE_VERIFY_MAC"
    case keyAgreement = "KEY_AGREEMENT"
}

/// The key spec, every one AWS names; what each allows is in KeySpecs.swift. SM2 and ML-DSA
/// are named so that requests for them get a clear UnsupportedOperationException (the OpenSSL
/// here, 3.0, has no ML-DSA, and SM2 is for AWS's China Regions only).
public enum KeySpec: String, Sendable, Codable, CaseIterable {
    case symmetricDefault = "SYMMETRIC_DEFAULT"
    case rsa2048 = "RSA_2048", rsa3072 = "RSA_3072", rsa4096 = "RSA_4096"
    case eccNISTP256 = "ECC_NIST_P256", eccNISTP384 = "ECC_NIST_P384", eccNISTP521 = "ECC_NIST_P521"
    case eccSECGP256K1 = "ECC_SECG_P256K1"
    case eccNISTEdwards25519 = "ECC_NIST_EDWARDS25519"
    case hmac224 = "HMAC_224", hmac256 = "HMAC_256", hmac384 = "HMAC_384", hmac512 = "HMAC_512"
    case sm2 = "SM2"
    case mlDSA44 = "ML_DSA_44", mlDSA65 = "ML_DSA_65", mlDSA87 = "ML_DSA_87"
}

public enum SigningAlgorithm: String, Sendable, Codable, CaseIterable {
    case rsassaPSSSHA256 = "RSASSA_PSS_SHA_256", rsassaPSSSHA384 = "RSASSA_PSS_SHA_384", rsassaPSSSHA512 = "RSASSA_PSS_SHA_512"
    case rsassaPKCS1SHA256 = "RSASSA_PKCS1_V1_5_SHA_256", rsassaPKCS1SHA384 = "RSASSA_PKCS1_V1_5_SHA_384"
    case rsassaPKCS1SHA512 = "RSASSA_PKCS1_V1_5_SHA_512"
    case ecdsaSHA256 = "ECDSA_SHA_256", ecdsaSHA384 = "ECDSA_SHA_384", ecdsaSHA512 = "ECDSA_SHA_512"
    case sm2DSA = "SM2DSA", mlDSASHAKE256 = "ML_DSA_SHAKE_256"
    case ed25519SHA512 = "ED25519_SHA_512", ed25519PHSHA512 = "ED25519_PH_SHA_512"
}

public enum MacAlgorithm: String, Sendable, Codable, CaseIterable {
    case hmacSHA224 = "HMAC_SHA_224", hmacSHA256 = "HMAC_SHA_256", hmacSHA384 = "HMAC_SHA_384", hmacSHA512 = "HMAC_SHA_512"
}

public enum KeyAgreementAlgorithm: String, Sendable, Codable, CaseIterable {
    case ecdh = "ECDH"
}

public enum MessageType: String, Sendable, Codable, CaseIterable {
    case raw = "RAW", digest = "DIGEST", externalMu = "EXTERNAL_MU"
}

/// The key pairs GenerateDataKeyPair makes.
public enum DataKeyPairSpec: String, Sendable, Codable, CaseIterable {
    case rsa2048 = "RSA_2048", rsa3072 = "RSA_3072", rsa4096 = "RSA_4096"
    case eccNISTP256 = "ECC_NIST_P256", eccNISTP384 = "ECC_NIST_P384", eccNISTP521 = "ECC_NIST_P521"
    case eccSECGP256K1 = "ECC_SECG_P256K1", sm2 = "SM2", eccNISTEdwards25519 = "ECC_NIST_EDWARDS25519"

    /// The key spec of the same name (whose material is made the same way).
    var keySpec: KeySpec { KeySpec(rawValue: rawValue)! }
}

public enum Origin: String, Sendable, Codable, CaseIterable {
    case awsKMS = "AWS_KMS"
    case external = "EXTERNAL"
    case awsCloudHSM = "AWS_CLOUDHSM"
    case externalKeyStore = "EXTERNAL_KEY_STORE"
}

public enum KeyManager: String, Sendable, Codable, CaseIterable {
    case aws = "AWS"
    case customer = "CUSTOMER"
}

public enum EncryptionAlgorithm: String, Sendable, Codable, CaseIterable {
    case symmetricDefault = "SYMMETRIC_DEFAULT"
    case rsaesOAEPSHA1 = "RSAES_OAEP_SHA_1"
    case rsaesOAEPSHA256 = "RSAES_OAEP_SHA_256"
    case sm2PKE = "SM2PKE"
}

public enum DataKeySpec: String, Sendable, Codable, CaseIterable {
    case aes128 = "AES_128"
    case aes256 = "AES_256"

    var byteCount: Int { self == .aes128 ? 16 : 32 }
}

public enum RotationType: String, Sendable, Codable {
    case automatic = "AUTOMATIC"
    case onDemand = "ON_DEMAND"
}

/// How GetParametersForImport's wrapping key wraps material (AWS's AlgorithmSpec).
public enum WrappingAlgorithm: String, Sendable, Codable, CaseIterable {
    case rsaesPKCS1 = "RSAES_PKCS1_V1_5"
    case rsaesOAEPSHA1 = "RSAES_OAEP_SHA_1", rsaesOAEPSHA256 = "RSAES_OAEP_SHA_256"
    case rsaAESKeyWrapSHA1 = "RSA_AES_KEY_WRAP_SHA_1", rsaAESKeyWrapSHA256 = "RSA_AES_KEY_WRAP_SHA_256"
    case sm2PKE = "SM2PKE"
}

public enum WrappingKeySpec: String, Sendable, Codable, CaseIterable {
    case rsa2048 = "RSA_2048", rsa3072 = "RSA_3072", rsa4096 = "RSA_4096", sm2 = "SM2"
}

/// ImportKeyMaterial's ImportType: material new to the key, or material it already has.
public enum ImportType: String, Sendable, Codable, CaseIterable {
    case new = "NEW_KEY_MATERIAL"
    case existing = "EXISTING_KEY_MATERIAL"
}

/// ListKeyRotations' KeyMaterialState and ImportState of a material.
public enum KeyMaterialState: String, Sendable, Codable, CaseIterable {
    case current = "CURRENT", nonCurrent = "NON_CURRENT", pendingRotation = "PENDING_ROTATION"
}

public enum ImportState: String, Sendable, Codable, CaseIterable {
    case imported = "IMPORTED", pendingImport = "PENDING_IMPORT"
}

public enum ExpirationModel: String, Sendable, Codable, CaseIterable {
    case expires = "KEY_MATERIAL_EXPIRES"
    case doesNotExpire = "KEY_MATERIAL_DOES_NOT_EXPIRE"
}
