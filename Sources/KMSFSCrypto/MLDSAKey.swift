internal import Crypto
import Foundation

/// An ML-DSA (FIPS 204) key pair for the key service's ML_DSA_65 and ML_DSA_87 key specs, through
/// swift-crypto (BoringSSL): OpenSSL 3.0 has no ML-DSA, and swift-crypto offers these two levels
/// (not ML-DSA-44, nor signing an external μ).
///
/// The private key is its 32-byte seed (FIPS 204's ξ), which is what is sealed and stored; the
/// public key leaves as a DER SubjectPublicKeyInfo with the NIST OID, as AWS's GetPublicKey gives it.
public struct MLDSAKey: Sendable {
    public enum Level: Sendable, Equatable {
        case mlDSA65, mlDSA87

        /// The DER of `id-ml-dsa-65` (2.16.840.1.101.3.4.3.18) or `id-ml-dsa-87` (…3.19).
        var oid: [UInt8] {
            [0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x03, self == .mlDSA65 ? 0x12 : 0x13]
        }
    }

    private enum Backing: Sendable {
        case mlDSA65(MLDSA65.PrivateKey)
        case mlDSA87(MLDSA87.PrivateKey)
    }

    public let level: Level
    private let backing: Backing

    public static func generate(_ level: Level) throws(CryptoError) -> MLDSAKey {
        do {
            switch level {
            case .mlDSA65: return MLDSAKey(level: level, backing: .mlDSA65(try MLDSA65.PrivateKey()))
            case .mlDSA87: return MLDSAKey(level: level, backing: .mlDSA87(try MLDSA87.PrivateKey()))
            }
        } catch {
            throw .openSSL(operation: "ML-DSA key generation", reason: "\(error)")
        }
    }

    private init(level: Level, backing: Backing) {
        self.level = level
        self.backing = backing
    }

    /// The key of `seed` (32 bytes).
    public init(level: Level, seed: SecretBytes) throws(CryptoError) {
        guard seed.count == 32 else { throw .openSSL(operation: "ML-DSA seed", reason: "a seed is 32 bytes, not \(seed.count)") }
        let bytes = seed.withUnsafeBytes { Data($0) }
        do {
            switch level {
            case .mlDSA65: backing = .mlDSA65(try MLDSA65.PrivateKey(seedRepresentation: bytes, publicKey: nil))
            case .mlDSA87: backing = .mlDSA87(try MLDSA87.PrivateKey(seedRepresentation: bytes, publicKey: nil))
            }
        } catch {
            throw .openSSL(operation: "ML-DSA seed", reason: "\(error)")
        }
        self.level = level
    }

    /// The seed, to be sealed and stored.
    public func seed() -> SecretBytes {
        var bytes: [UInt8]
        switch backing {
        case let .mlDSA65(key): bytes = Array(key.seedRepresentation)
        case let .mlDSA87(key): bytes = Array(key.seedRepresentation)
        }
        return SecretBytes(wiping: &bytes)
    }

    /// A pure ML-DSA signature of `message` with an empty context, as AWS's ML_DSA_SHAKE_256 over a RAW message.
    public func sign(_ message: [UInt8]) throws(CryptoError) -> [UInt8] {
        do {
            switch backing {
            case let .mlDSA65(key): return Array(try key.signature(for: message))
            case let .mlDSA87(key): return Array(try key.signature(for: message))
            }
        } catch {
            throw .openSSL(operation: "ML-DSA sign", reason: "\(error)")
        }
    }

    public func verify(_ signature: [UInt8], for message: [UInt8]) -> Bool {
        switch backing {
        case let .mlDSA65(key): return key.publicKey.isValidSignature(signature, for: message)
        case let .mlDSA87(key): return key.publicKey.isValidSignature(signature, for: message)
        }
    }

    /// The public key's raw FIPS 204 encoding.
    public var publicKeyRaw: [UInt8] {
        switch backing {
        case let .mlDSA65(key): return Array(key.publicKey.rawRepresentation)
        case let .mlDSA87(key): return Array(key.publicKey.rawRepresentation)
        }
    }

    /// `SEQUENCE { SEQUENCE { OID }, BIT STRING { 0 unused bits ‖ raw key } }` (RFC 9881's form).
    public func publicKeyDER() -> [UInt8] {
        let algorithm = Self.der(0x30, level.oid)
        let key = Self.der(0x03, [0x00] + publicKeyRaw)
        return Self.der(0x30, algorithm + key)
    }

    private static func der(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
        let count = content.count
        let length: [UInt8] = count < 0x80 ? [UInt8(count)]
            : count < 0x100 ? [0x81, UInt8(count)] : [0x82, UInt8(count >> 8), UInt8(count & 0xff)]
        return [tag] + length + content
    }
}
