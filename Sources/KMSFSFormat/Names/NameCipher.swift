import KMSFSCrypto

/// How a plaintext name becomes a name in the backing directory, and back (docs/FORMAT.md,
/// "Encrypted names").
///
/// A name is padded to a multiple of 16 bytes (its exact length is not shown), sealed with
/// AES-256-SIV under the volume's name key with the directory's ID as associated data, and
/// written in unpadded base64url. The same name in the same directory always gives the same
/// backing name, so a lookup stays one backing lookup; the same name in another directory gives
/// another; a backing name moved to another directory, or edited, does not open. No state is
/// kept per directory besides its ID. An encoded name longer than 255 bytes is stored as
/// `kmsfs.long.` + base64url(SHA-256(encoded name)), with the encoded name in a side file.
public struct NameCipher: Sendable {
    /// Plaintext names are padded to a multiple of this.
    public static let padding = 16
    /// The longest name a backing directory takes.
    public static let maximumBackingLength = 255
    /// Prefix of the backing names of long names (never produced by base64url: it has '.').
    public static let longPrefix = Array("kmsfs.long.".utf8)
    /// Suffix of a long name's side file, which holds its encoded name.
    public static let sideFileSuffix = Array(".name".utf8)
    /// The root directory's ID: it has no attribute of its own, and the name key is the volume's.
    public static let rootDirectoryID = [UInt8](repeating: 0, count: DirectoryID.byteCount)

    let siv: AESSIV
    /// AES-256-GCM key of extended-attribute values.
    let valueKey: SecretBytes

    /// `nameKey`: the volume's name key (32 bytes from the key service). The SIV key is derived
    /// from it with HKDF-SHA-256, info "kmsfs names AES-256-SIV", so that the key the service
    /// wraps can serve other name-related keys later without reuse across modes.
    public init(nameKey: SecretBytes) throws {
        siv = try AESSIV(key: HKDF.sha256(inputKeyMaterial: nameKey, info: Array("kmsfs names AES-256-SIV".utf8), outputByteCount: AESSIV.keyByteCount))
        valueKey = try HKDF.sha256(inputKeyMaterial: nameKey, info: Array("kmsfs xattr values AES-256-GCM".utf8), outputByteCount: AESGCM.keyByteCount)
    }

    /// A name as stored: short (the encoded name itself) or long (the hashed name, and the
    /// encoded name for its side file).
    public enum BackingName: Equatable, Sendable {
        case short([UInt8])
        case long(hashed: [UInt8], encoded: [UInt8])

        /// The name of the entry in the backing directory.
        public var entryName: [UInt8] {
            switch self {
            case let .short(name): return name
            case let .long(hashed, _): return hashed
            }
        }
    }

    /// - Throws: ``NameError/invalid`` for a name POSIX does not allow (empty, "." or "..",
    ///   with '/' or NUL, longer than 255 bytes).
    public func encrypt(_ name: [UInt8], directoryID: [UInt8]) throws -> BackingName {
        try Self.validate(name)
        let encoded = try seal(name, associatedData: directoryID)
        guard encoded.count > Self.maximumBackingLength else { return .short(encoded) }
        return .long(hashed: Self.hashedName(encoded), encoded: encoded)
    }

    /// The plaintext of an encoded name (for a long one, the side file's content).
    /// - Throws: ``NameError/undecryptable`` for anything this directory's key and ID did not make.
    public func decrypt(_ encoded: [UInt8], directoryID: [UInt8]) throws -> [UInt8] {
        let name = try open(encoded, associatedData: directoryID)
        do { try Self.validate(name) } catch { throw NameError.undecryptable }
        return name
    }

    /// Pads `bytes` to a multiple of 16 (n bytes of value n), seals them with AES-SIV and
    /// `associatedData` as the one component, and encodes the result: names, link targets and
    /// attribute names alike, each kind with its own associated data.
    func seal(_ bytes: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        let padCount = Self.padding - bytes.count % Self.padding
        return Base64URL.encode(try siv.seal(bytes + [UInt8](repeating: UInt8(padCount), count: padCount),
                                             associatedData: [associatedData]))
    }

    /// ``seal(_:associatedData:)`` undone; the result is never empty.
    /// - Throws: ``NameError/undecryptable``.
    func open(_ encoded: some Collection<UInt8>, associatedData: [UInt8]) throws -> [UInt8] {
        guard let sealed = Base64URL.decode(encoded), sealed.count >= AESSIV.tagByteCount + Self.padding,
              (sealed.count - AESSIV.tagByteCount) % Self.padding == 0,
              let padded = try? siv.open(sealed, associatedData: [associatedData]),
              let last = padded.last, (1...Self.padding).contains(Int(last)), padded.suffix(Int(last)).allSatisfy({ $0 == last }),
              padded.count > Int(last)
        else { throw NameError.undecryptable }
        return Array(padded.dropLast(Int(last)))
    }

    /// The associated data of symbolic-link targets (a name's is a 16-byte directory ID: the two
    /// never open as each other).
    public static let targetAssociatedData = Array("kmsfs symlink target".utf8)
    /// The longest target that still fits in PATH_MAX once encrypted.
    public static let maximumTargetLength = 3039

    /// A symbolic link's target as stored: padded, sealed, base64url, as a name but with its own
    /// associated data. Not bound to the link's directory: a link keeps its target when moved.
    /// - Throws: ``NameError/invalid`` for an empty target, one with NUL, or one longer than
    ///   ``maximumTargetLength``.
    public func encryptTarget(_ target: [UInt8]) throws -> [UInt8] {
        guard !target.isEmpty, target.count <= Self.maximumTargetLength, !target.contains(0) else { throw NameError.invalid }
        return try seal(target, associatedData: Self.targetAssociatedData)
    }

    /// - Throws: ``NameError/undecryptable``.
    public func decryptTarget(_ stored: [UInt8]) throws -> [UInt8] {
        let target = try open(stored, associatedData: Self.targetAssociatedData)
        guard !target.contains(0) else { throw NameError.undecryptable }
        return target
    }

    /// `kmsfs.long.` + base64url(SHA-256(encoded)): 54 bytes.
    public static func hashedName(_ encoded: [UInt8]) -> [UInt8] {
        longPrefix + Base64URL.encode(SHA256.hash(encoded))
    }

    /// Whether a backing name is a long name's entry (not its side file, not another kmsfs name).
    public static func isLongEntry(_ name: [UInt8]) -> Bool {
        name.count == longPrefix.count + 43 && name.starts(with: longPrefix)
    }

    static func validate(_ name: [UInt8]) throws {
        guard !name.isEmpty, name.count <= 255, name != [46], name != [46, 46], !name.contains(47), !name.contains(0) else {
            throw NameError.invalid
        }
    }
}

public enum NameError: Error, Equatable, CustomStringConvertible {
    /// Not a name POSIX allows.
    case invalid
    /// A backing name that does not decrypt here: edited, moved from another directory, or not kmsfs's.
    case undecryptable

    public var description: String {
        switch self {
        case .invalid: return "not a valid file name"
        case .undecryptable: return "a backing name that does not decrypt in its directory (edited, or moved from another directory)"
        }
    }
}

/// A directory's ID: 16 random bytes in the backing directory's `user.kmsfs.dirid` attribute,
/// the associated data of every name in it.
public enum DirectoryID {
    public static let byteCount = 16
    public static let attributeName = "user.kmsfs.dirid"
}
