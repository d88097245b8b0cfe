import KMSFSCrypto

/// What each key spec allows, as AWS's CreateKey documents it: its key usages and, for each
/// usage, its algorithms. Declared once here; CreateKey, DescribeKey, GetPublicKey and the
/// cryptographic operations all ask.
extension KeySpec {
    /// The key usages CreateKey accepts with this spec.
    var usages: [KeyUsage] {
        switch self {
        case .symmetricDefault: return [.encryptDecrypt]
        case .rsa2048, .rsa3072, .rsa4096: return [.encryptDecrypt, .signVerify]
        case .eccNISTP256, .eccNISTP384, .eccNISTP521: return [.signVerify, .keyAgreement]
        case .eccSECGP256K1, .eccNISTEdwards25519, .mlDSA44, .mlDSA65, .mlDSA87: return [.signVerify]
        case .hmac224, .hmac256, .hmac384, .hmac512: return [.generateVerifyMAC]
        case .sm2: return [.encryptDecrypt, .signVerify, .keyAgreement]
        }
    }

    /// Whether this key service makes keys of this spec (ML-DSA-44: swift-crypto has 65 and 87 only).
    var isImplemented: Bool {
        switch self {
        case .mlDSA44: return false
        default: return true
        }
    }

    var isSymmetric: Bool { self == .symmetricDefault }
    var isHMAC: Bool { [.hmac224, .hmac256, .hmac384, .hmac512].contains(self) }
    var isAsymmetric: Bool { !isSymmetric && !isHMAC }

    func encryptionAlgorithms(_ usage: KeyUsage) -> [EncryptionAlgorithm] {
        guard usage == .encryptDecrypt else { return [] }
        switch self {
        case .symmetricDefault: return [.symmetricDefault]
        case .rsa2048, .rsa3072, .rsa4096: return [.rsaesOAEPSHA1, .rsaesOAEPSHA256]
        case .sm2: return [.sm2PKE]
        default: return []
        }
    }

    func signingAlgorithms(_ usage: KeyUsage) -> [SigningAlgorithm] {
        guard usage == .signVerify else { return [] }
        switch self {
        case .rsa2048, .rsa3072, .rsa4096:
            return [.rsassaPSSSHA256, .rsassaPSSSHA384, .rsassaPSSSHA512, .rsassaPKCS1SHA256, .rsassaPKCS1SHA384, .rsassaPKCS1SHA512]
        case .eccNISTP256, .eccSECGP256K1: return [.ecdsaSHA256]
        case .eccNISTP384: return [.ecdsaSHA384]
        case .eccNISTP521: return [.ecdsaSHA512]
        case .eccNISTEdwards25519: return [.ed25519SHA512, .ed25519PHSHA512]
        case .sm2: return [.sm2DSA]
        case .mlDSA44, .mlDSA65, .mlDSA87: return [.mlDSASHAKE256]
        default: return []
        }
    }

    func macAlgorithms(_ usage: KeyUsage) -> [MacAlgorithm] {
        guard usage == .generateVerifyMAC else { return [] }
        switch self {
        case .hmac224: return [.hmacSHA224]
        case .hmac256: return [.hmacSHA256]
        case .hmac384: return [.hmacSHA384]
        case .hmac512: return [.hmacSHA512]
        default: return []
        }
    }

    func keyAgreementAlgorithms(_ usage: KeyUsage) -> [KeyAgreementAlgorithm] {
        usage == .keyAgreement ? [.ecdh] : []
    }

    /// The OpenSSL key of an asymmetric spec.
    var asymmetricKind: AsymmetricKey.Kind? {
        switch self {
        case .rsa2048: return .rsa(bits: 2048)
        case .rsa3072: return .rsa(bits: 3072)
        case .rsa4096: return .rsa(bits: 4096)
        case .eccNISTP256: return .ec(.p256)
        case .eccNISTP384: return .ec(.p384)
        case .eccNISTP521: return .ec(.p521)
        case .eccSECGP256K1: return .ec(.secp256k1)
        case .eccNISTEdwards25519: return .ed25519
        case .sm2: return .sm2
        default: return nil
        }
    }

    /// The ML-DSA level of an ML-DSA spec this service makes.
    var mlDSALevel: MLDSAKey.Level? {
        switch self {
        case .mlDSA65: return .mlDSA65
        case .mlDSA87: return .mlDSA87
        default: return nil
        }
    }

    /// The HMAC digest of an HMAC spec; its key is as long as the digest.
    var hmacDigest: HMAC.Digest? {
        switch self {
        case .hmac224: return .sha224
        case .hmac256: return .sha256
        case .hmac384: return .sha384
        case .hmac512: return .sha512
        default: return nil
        }
    }
}

extension SigningAlgorithm {
    /// How OpenSSL makes the signature; nil for the algorithms not served (ML-DSA, and
    /// Ed25519ph, which OpenSSL 3.0 does not offer).
    var scheme: AsymmetricKey.Scheme? {
        switch self {
        case .rsassaPSSSHA256: return .rsaPSS(.sha256)
        case .rsassaPSSSHA384: return .rsaPSS(.sha384)
        case .rsassaPSSSHA512: return .rsaPSS(.sha512)
        case .rsassaPKCS1SHA256: return .rsaPKCS1(.sha256)
        case .rsassaPKCS1SHA384: return .rsaPKCS1(.sha384)
        case .rsassaPKCS1SHA512: return .rsaPKCS1(.sha512)
        case .ecdsaSHA256: return .ecdsa(.sha256)
        case .ecdsaSHA384: return .ecdsa(.sha384)
        case .ecdsaSHA512: return .ecdsa(.sha512)
        case .ed25519SHA512: return .ed25519
        case .sm2DSA: return .sm2
        case .mlDSASHAKE256, .ed25519PHSHA512: return nil
        }
    }
}

extension MacAlgorithm {
    var digest: HMAC.Digest {
        switch self {
        case .hmacSHA224: return .sha224
        case .hmacSHA256: return .sha256
        case .hmacSHA384: return .sha384
        case .hmacSHA512: return .sha512
        }
    }
}

extension EncryptionAlgorithm {
    /// The OAEP digest of an RSA algorithm.
    var oaepDigest: AsymmetricKey.Digest? {
        switch self {
        case .rsaesOAEPSHA1: return .sha1
        case .rsaesOAEPSHA256: return .sha256
        default: return nil
        }
    }
}
