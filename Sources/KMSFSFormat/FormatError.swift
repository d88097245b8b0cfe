/// Why a backing file could not be read as a kmsfs encrypted file.
///
/// Every case but ``fileTooLarge`` means "do not trust these bytes": the FUSE frontend maps them
/// to `EIO` and logs the case, which names the file's problem without revealing content.
public enum FormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file does not start with a kmsfs header (wrong magic, or shorter than a header).
    case notAnEncryptedFile
    /// The header names a format version this build cannot read.
    case unsupportedVersion(UInt16)
    /// A header field is out of range (reserved bits set, chunk size not allowed).
    case corruptHeader(String)
    /// The ciphertext size matches no valid layout: the file was truncated or extended outside kmsfs.
    case invalidCipherSize(Int64)
    /// A chunk failed authentication: changed, moved, taken from another file, or the wrong key.
    case authenticationFailed(chunk: UInt64)
    /// A size or offset beyond what a file can hold (``ChunkGeometry/maximumPlainSize``): EFBIG.
    case fileTooLarge

    public var description: String {
        switch self {
        case .notAnEncryptedFile: return "not a kmsfs encrypted file (no valid header)"
        case let .unsupportedVersion(version):
            return version == 1
                ? "format version 1 (AES-GCM with 96-bit nonces, written before kmsfs bounded seals per key): copy the file into a new volume with the kmsfs that wrote it"
                : "unsupported format version \(version)"
        case let .corruptHeader(reason): return "corrupt header: \(reason)"
        case let .invalidCipherSize(size): return "ciphertext size \(size) is not a valid layout (truncated or extended)"
        case let .authenticationFailed(chunk): return "chunk \(chunk) failed authentication"
        case .fileTooLarge: return "size or offset beyond the largest file this format holds"
        }
    }
}
