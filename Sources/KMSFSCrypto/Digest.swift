internal import COpenSSL

/// SHA-256 and HMAC-SHA-256 (one-shot; inputs here are small: headers, requests, key IDs).
public enum SHA256 {
    public static let byteCount = 32

    public static func hash(_ message: some BorrowableBytes) -> [UInt8] {
        var digest = [UInt8](repeating: 0, count: byteCount)
        var length: UInt32 = 0
        let ok = message.withUnsafeBytes { message in
            EVP_Digest(message.baseAddress, message.count, &digest, &length, EVP_sha256(), nil)
        }
        // EVP_Digest with a built-in digest fails only when memory is exhausted.
        precondition(ok == 1 && length == byteCount, "EVP_Digest(SHA-256) failed")
        return digest
    }
}

public enum HMAC {
    /// HMAC-SHA-256 of `message` under `key`.
    public static func sha256(key: some BorrowableBytes, message: some BorrowableBytes) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: SHA256.byteCount)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { key in
            message.withUnsafeBytes { message in
                COpenSSL.HMAC(
                    EVP_sha256(), key.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(key.count),
                    message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count,
                    &mac, &length)
            }
        }
        precondition(result != nil && length == SHA256.byteCount, "HMAC(SHA-256) failed")
        return mac
    }

    /// HMAC-SHA-256 keyed with a secret, for derivations whose key must not sit in an array.
    public static func sha256(key: SecretBytes, message: some BorrowableBytes) -> [UInt8] {
        key.withUnsafeBytes { key in sha256(key: key, message: message) }
    }
}

/// Byte containers whose storage can be lent as raw bytes (arrays, slices, raw buffers).
public protocol BorrowableBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}

extension Array: BorrowableBytes where Element == UInt8 {}
extension ArraySlice: BorrowableBytes where Element == UInt8 {}
extension UnsafeRawBufferPointer: BorrowableBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

/// The SHA digests the key service names: its HMAC key specs, RSA and ECDSA signing, RSA-OAEP.
public enum DigestAlgorithm: Sendable, CaseIterable {
    case sha1, sha224, sha256, sha384, sha512

    public var byteCount: Int {
        switch self {
        case .sha1: return 20
        case .sha224: return 28
        case .sha256: return 32
        case .sha384: return 48
        case .sha512: return 64
        }
    }

    var md: OpaquePointer? {
        switch self {
        case .sha1: return EVP_sha1()
        case .sha224: return EVP_sha224()
        case .sha256: return EVP_sha256()
        case .sha384: return EVP_sha384()
        case .sha512: return EVP_sha512()
        }
    }
}

extension HMAC {
    public typealias Digest = DigestAlgorithm

    /// HMAC of `message` under a secret key with `digest`.
    public static func mac(_ digest: Digest, key: SecretBytes, message: [UInt8]) -> [UInt8] {
        var mac = [UInt8](repeating: 0, count: digest.byteCount)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { key in
            message.withUnsafeBytes { message in
                COpenSSL.HMAC(digest.md, key.baseAddress ?? UnsafeRawPointer(bitPattern: 1), Int32(key.count),
                              message.baseAddress?.assumingMemoryBound(to: UInt8.self), message.count, &mac, &length)
            }
        }
        precondition(result != nil && Int(length) == digest.byteCount, "HMAC failed")
        return mac
    }
}
