/// The value of a backing file's `user.kmsfs.key` extended attribute: its data key, wrapped by
/// the KMS, and what is needed to unwrap it.
///
/// ```
/// u8      format (1)
/// 16      file ID (the same as in the file's header)
/// u16 BE  n, then n bytes: the wrapping KMS key's ARN (UTF-8)
/// u16 BE  m, then m bytes: the KMS ciphertext blob of the data key
/// ```
///
/// The blob is bound (encryption context) to the volume ID and the file ID in the *header*, so a
/// wrapped key copied onto another file does not unwrap there. Re-wrapping under another KMS key
/// (rewrap, rotation of the wrapping key) rewrites only this attribute, never file data.
public struct WrappedFileKey: Equatable, Sendable {
    public static let attributeName = "user.kmsfs.key"
    static let format: UInt8 = 1

    public var fileID: [UInt8]
    public var keyARN: String
    public var ciphertextBlob: [UInt8]

    public init(fileID: [UInt8], keyARN: String, ciphertextBlob: [UInt8]) {
        precondition(fileID.count == 16 && keyARN.utf8.count <= 0xffff && ciphertextBlob.count <= 0xffff)
        self.fileID = fileID
        self.keyARN = keyARN
        self.ciphertextBlob = ciphertextBlob
    }

    public var encoded: [UInt8] {
        [Self.format] + fileID + LengthPrefixedFields.encode([Array(keyARN.utf8), ciphertextBlob])
    }

    /// - Throws: ``FileKeyError/malformedAttribute`` for anything that is not a format-1 value.
    public init(decoding bytes: [UInt8]) throws(FileKeyError) {
        guard bytes.count >= 1 + 16, bytes[0] == Self.format,
              let fields = LengthPrefixedFields.decode(bytes, from: 17, count: 2), !fields[1].isEmpty,
              let keyARN = String(validating: fields[0], as: UTF8.self)
        else { throw .malformedAttribute }
        let blob = fields[1]
        self.init(fileID: Array(bytes[1..<17]), keyARN: keyARN, ciphertextBlob: blob)
    }
}

public enum FileKeyError: Error, Equatable, CustomStringConvertible {
    case malformedAttribute
    case fileIDMismatch
    case missingAttribute
    /// A bucket-key file's bucket record is not where its attribute says (a copy of the files
    /// without `kmsfs.buckets`).
    case missingBucket
    case malformedBucket
    /// A per-file operation (rewrap of one file) on a file whose key is its bucket's.
    case bucketKeyed
    /// `kmsfs.buckets` is not this process's user's, or others may write it.
    case untrustedBucketDirectory

    public var description: String {
        switch self {
        case .missingBucket: return "the file's bucket key is missing from kmsfs.buckets (copied without it?)"
        case .malformedBucket: return "the file's bucket key record is malformed"
        case .untrustedBucketDirectory: return "kmsfs.buckets is not this user's, or others may write it: its records are not trusted"
        case .bucketKeyed: return "the file's key is derived from a bucket key: re-wrap the volume's buckets (kmsfs rewrap CIPHERDIR, unmounted)"
        case .malformedAttribute: return "the file's key attribute is malformed"
        case .fileIDMismatch: return "the file's key attribute belongs to another file"
        case .missingAttribute: return "the file has no key attribute (copied without extended attributes?)"
        }
    }
}
