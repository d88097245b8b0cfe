import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// When a volume's bucket key is replaced by a new one (in the spirit of the AWS Encryption
/// SDK's data-key caching limits). Part of the authenticated configuration.
public struct BucketKeyPolicy: Codable, Sendable, Equatable {
    /// Seconds a bucket key serves new files after it is made.
    public var maxAge: Int
    /// New files a bucket key serves.
    public var maxFiles: Int

    public static let `default` = BucketKeyPolicy(maxAge: 3600, maxFiles: 10_000)
    public static let limits = (age: 1...(366 * 86_400), files: 1...1_000_000)

    public init(maxAge: Int, maxFiles: Int) {
        self.maxAge = maxAge
        self.maxFiles = maxFiles
    }

    public var isValid: Bool { Self.limits.age.contains(maxAge) && Self.limits.files.contains(maxFiles) }
}

/// A bucket key as stored in `kmsfs.buckets/<hex bucket ID>`: the KMS key that wraps it and the
/// KMS ciphertext blob (bound to the volume and the bucket ID by its encryption context).
///
/// ```
/// u8      format (1)
/// u16 BE  n, then n bytes: the wrapping KMS key's ARN (UTF-8)
/// u16 BE  m, then m bytes: the KMS ciphertext blob of the bucket key
/// ```
public struct BucketRecord: Equatable, Sendable {
    static let format: UInt8 = 1
    public var keyARN: String
    public var ciphertextBlob: [UInt8]

    var encoded: [UInt8] {
        [Self.format] + LengthPrefixedFields.encode([Array(keyARN.utf8), ciphertextBlob])
    }

    init(keyARN: String, ciphertextBlob: [UInt8]) {
        self.keyARN = keyARN
        self.ciphertextBlob = ciphertextBlob
    }

    init(decoding bytes: [UInt8]) throws(FileKeyError) {
        guard bytes.first == Self.format, let fields = LengthPrefixedFields.decode(bytes, from: 1, count: 2), !fields[1].isEmpty,
              let keyARN = String(validating: fields[0], as: UTF8.self)
        else { throw .malformedBucket }
        self.init(keyARN: keyARN, ciphertextBlob: fields[1])
    }

    static let directoryName = "kmsfs.buckets"

    /// The bucket directory, opened without following a link: whoever can write the backing
    /// directory could otherwise make it a symbolic link and have this process (root, for a
    /// shared mount) write or read bucket records wherever it points.
    /// And it must be this process's user's, writable by no one else: in a backing directory
    /// others may write (a shared mount's root is often 1777), a directory planted under this
    /// name would let them delete records, or put FIFOs in their place.
    static func openDirectory(cipherDirectory: String, create: Bool) throws -> Int32 {
        let path = cipherDirectory + "/" + directoryName
        if create { try makeDirectory(cipherDirectory: cipherDirectory) }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw FileKeyError.missingBucket }
            throw StorageError(errno: errno, operation: "open \(directoryName)")
        }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o022 == 0 else {
            close(fd)
            throw FileKeyError.untrustedBucketDirectory
        }
        return fd
    }

    /// Creates the bucket directory (0700) if it is not there: at `kmsfs init`, and before a
    /// first bucket.
    static func makeDirectory(cipherDirectory: String) throws {
        if mkdir(cipherDirectory + "/" + directoryName, 0o700) != 0 && errno != EEXIST {
            throw StorageError(errno: errno, operation: "mkdir \(directoryName)")
        }
    }

    /// Reads bucket `bucketID`'s record from the backing directory (untrusted: the blob's
    /// context decides whether it opens).
    public static func read(cipherDirectory: String, bucketID: [UInt8]) throws -> BucketRecord {
        let directory = try openDirectory(cipherDirectory: cipherDirectory, create: false)
        defer { close(directory) }
        // Not blocking on a FIFO planted in its place; anything but a regular file is not a record.
        let fd = openat(directory, hex(bucketID), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)
        guard fd >= 0 else {
            if errno == ENOENT { throw FileKeyError.missingBucket }
            if errno == ELOOP || errno == EISDIR { throw FileKeyError.malformedBucket }
            throw StorageError(errno: errno, operation: "open \(directoryName)/\(hex(bucketID))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { throw FileKeyError.malformedBucket }
        var bytes = [UInt8](repeating: 0, count: 4097)
        let count = Glibc.read(fd, &bytes, bytes.count)
        guard count >= 0 else { throw StorageError(errno: errno, operation: "read \(directoryName)/\(hex(bucketID))") }
        guard count < bytes.count else { throw FileKeyError.malformedBucket }
        return try BucketRecord(decoding: Array(bytes[0..<count]))
    }

    /// Writes the record whole (a new name, fsync'ed, renamed; the directory fsync'ed) before
    /// any file names the bucket.
    func write(cipherDirectory: String, bucketID: [UInt8]) throws {
        let directory = try Self.openDirectory(cipherDirectory: cipherDirectory, create: true)
        defer { close(directory) }
        let name = hex(bucketID), temporary = ".tmp-\(hex(bucketID))-\(getpid())"
        let fd = openat(directory, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw StorageError(errno: errno, operation: "create \(Self.directoryName)/\(temporary)") }
        let bytes = encoded
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = written == bytes.count && fsync(fd) == 0
        let error = errno
        close(fd)
        guard synced, renameat(directory, temporary, directory, name) == 0 else {
            let failure = synced ? errno : (written < 0 ? error : ENOSPC)
            unlinkat(directory, temporary, 0)
            throw StorageError(errno: failure, operation: "write \(Self.directoryName)/\(name)")
        }
        guard fsync(directory) == 0 else { throw StorageError(errno: errno, operation: "fsync \(Self.directoryName)") }
    }
}

/// Bucket keys (the S3 Bucket Key analog): new files' data keys are derived from an intermediate
/// key that the KMS wraps once per ``BucketKeyPolicy/maxFiles`` files or
/// ``BucketKeyPolicy/maxAge`` seconds, instead of one GenerateDataKey per file. The key
/// service's audit then records a bucket key's creation and each unwrap of it (once per mount
/// and cache period), not each file; docs/ARCHITECTURE.md says what that gives up.
public final class BucketKeys: Sendable {
    let cipherDirectory: String
    let volumeID: String
    let policy: BucketKeyPolicy
    private let client: any KMSClient
    private let cache: DataKeyCache
    private let now: @Sendable () -> Date
    /// The bucket serving new files, per KMS key the files ask for.
    private let current = Mutex<[String: Current]>([:])

    struct Current {
        var bucketID: [UInt8]
        var keyARN: String
        var key: SecretBytes
        var made: Date
        var files: Int
    }

    public init(cipherDirectory: String, volumeID: String, policy: BucketKeyPolicy, client: any KMSClient, cache: DataKeyCache,
                now: @escaping @Sendable () -> Date = { Date() }) {
        self.cipherDirectory = cipherDirectory
        self.volumeID = volumeID
        self.policy = policy
        self.client = client
        self.cache = cache
        self.now = now
    }

    static func context(volumeID: String, bucketID: [UInt8]) -> EncryptionContext {
        ["kmsfs:volume": volumeID, "kmsfs:bucket": hex(bucketID)]
    }

    /// A new file's attribute and data key under `keyID`: from the current bucket of that key,
    /// or from a new bucket when the current one has served its files or its time.
    func newFile(keyID: String, fileID: [UInt8]) throws -> (attribute: BucketFileKey, key: SecretBytes, keyARN: String) {
        let (bucketID, bucketKey, arn) = try current.withLock { buckets throws -> ([UInt8], SecretBytes, String) in
            let time = now()
            if var bucket = buckets[keyID], bucket.files < policy.maxFiles,
               time.timeIntervalSince(bucket.made) < Double(policy.maxAge), time >= bucket.made {
                bucket.files += 1
                buckets[keyID] = bucket
                return (bucket.bucketID, bucket.key, bucket.keyARN)
            }
            // Made under the lock: creates that arrive meanwhile wait for this one bucket
            // rather than each making their own (once per maxFiles files).
            let bucket = try makeBucket(keyID: keyID, at: time)
            buckets[keyID] = bucket
            return (bucket.bucketID, bucket.key, bucket.keyARN)
        }
        let key = try Self.fileKey(bucketKey: bucketKey, volumeID: volumeID, fileID: fileID)
        return (BucketFileKey(fileID: fileID, bucketID: bucketID), key, arn)
    }

    private func makeBucket(keyID: String, at time: Date) throws -> Current {
        let bucketID = try SecureRandom.bytes(count: BucketFileKey.bucketIDByteCount)
        let context = Self.context(volumeID: volumeID, bucketID: bucketID)
        let dataKey = try client.generateDataKey(keyID: keyID, context: context)
        try FileKeys.checkSize(dataKey.plaintext)
        try BucketRecord(keyARN: dataKey.keyARN, ciphertextBlob: dataKey.ciphertextBlob).write(cipherDirectory: cipherDirectory, bucketID: bucketID)
        cache.insert(dataKey.plaintext, for: dataKey.ciphertextBlob, keyID: dataKey.keyARN, context: context)
        return Current(bucketID: bucketID, keyARN: dataKey.keyARN, key: dataKey.plaintext, made: time, files: 1)
    }

    /// An existing file's data key, through its bucket (unwrapped once per cache period).
    func key(of attribute: BucketFileKey) throws -> SecretBytes {
        let record = try BucketRecord.read(cipherDirectory: cipherDirectory, bucketID: attribute.bucketID)
        let context = Self.context(volumeID: volumeID, bucketID: attribute.bucketID)
        let bucketKey = try cache.key(for: record.ciphertextBlob, keyID: record.keyARN, context: context) { () throws(KMSClientError) -> SecretBytes in
            let key = try client.decrypt(ciphertextBlob: record.ciphertextBlob, context: context, keyID: record.keyARN)
            try FileKeys.checkSize(key)
            return key
        }
        return try Self.fileKey(bucketKey: bucketKey, volumeID: volumeID, fileID: attribute.fileID)
    }

    /// Re-wraps bucket `bucketID` under `destinationARN` (ReEncrypt), replacing its record whole
    /// (a new file renamed over it: a crash leaves the old record or the new one).
    public func rewrap(bucketID: [UInt8], to destinationARN: String, selected: (String) -> Bool = { _ in true }) throws -> RewrapOutcome {
        let record = try BucketRecord.read(cipherDirectory: cipherDirectory, bucketID: bucketID)
        if record.keyARN == destinationARN { return .alreadyThere }
        guard selected(record.keyARN) else { return .notSelected(keyARN: record.keyARN) }
        let context = Self.context(volumeID: volumeID, bucketID: bucketID)
        let blob = try client.reEncrypt(ciphertextBlob: record.ciphertextBlob, sourceContext: context,
                                        destinationKeyID: destinationARN, destinationContext: context)
        try BucketRecord(keyARN: destinationARN, ciphertextBlob: blob).write(cipherDirectory: cipherDirectory, bucketID: bucketID)
        return .rewrapped(from: record.keyARN)
    }

    /// A file's key: HKDF-SHA-256 of the bucket key, salted with a label of this use, over the
    /// volume and file IDs — a different key for every file, made where it is needed.
    public static func fileKey(bucketKey: SecretBytes, volumeID: String, fileID: [UInt8]) throws -> SecretBytes {
        try HKDF.sha256(inputKeyMaterial: bucketKey, salt: Array("kmsfs bucket file key 1".utf8),
                        info: Array(volumeID.utf8) + [0] + fileID, outputByteCount: 32)
    }

    /// The IDs of the buckets stored in a backing directory.
    public static func bucketIDs(cipherDirectory: String) throws -> [[UInt8]] {
        let directory = cipherDirectory + "/" + BucketRecord.directoryName
        guard FileManager.default.fileExists(atPath: directory) else { return [] }
        return try FileManager.default.contentsOfDirectory(atPath: directory).sorted().compactMap { name in
            guard name.utf8.count == 2 * BucketFileKey.bucketIDByteCount else { return nil }
            return unhex(name)
        }
    }
}
