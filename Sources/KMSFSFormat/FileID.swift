import KMSFSCrypto

/// The random 128-bit identity of one encrypted file.
///
/// It is bound into every chunk's additional data (so chunks cannot move between files) and will
/// key a manifest that restores lost wrapped keys. It is not secret.
public struct FileID: Hashable, Sendable, CustomStringConvertible {
    public static let byteCount = 16
    public let bytes: [UInt8]

    public init(bytes: [UInt8]) {
        precondition(bytes.count == Self.byteCount, "a file ID is 16 bytes")
        self.bytes = bytes
    }

    /// A new random file ID.
    public static func random() throws(CryptoError) -> FileID {
        try FileID(bytes: SecureRandom.bytes(count: byteCount))
    }

    /// Lower-case hex, the form used in logs and tools.
    public var description: String { hex(bytes) }
}
