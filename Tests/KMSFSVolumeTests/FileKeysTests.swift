import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat
@testable import KMSFSVolume
import Testing

@Suite struct FileKeysTests {
    final class Fixture {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("filekeys-\(UUID().uuidString)")
        let engine: KMSEngine
        let client: EmbeddedKMSClient
        let keyID: String
        init() throws {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            engine = try KMSEngine.open(path: directory.appendingPathComponent("k.sqlite").path, rootKey: .generate(), schedulerInterval: nil)
            let caller = Caller(account: "111122223333", region: "local", viaService: "kmsfs")
            client = EmbeddedKMSClient(engine: engine, caller: caller)
            keyID = try engine.createKey(CreateKeyRequest(), caller: caller).keyMetadata.arn
        }
        deinit { try? FileManager.default.removeItem(at: directory) }

        func keys(volume: String = "vol-1", pool: Bool = false) -> FileKeys {
            let pool = pool ? KeyPool(client: client, keyID: keyID, size: 8, lowWater: 4) { FileKeys.context(volumeID: volume, fileID: $0) } : nil
            return FileKeys(volumeID: volume, chunkSize: 16384, client: client, pool: pool, cache: DataKeyCache())
        }
    }

    @Test func attributeRoundTripAndMalformedValues() throws {
        let attribute = WrappedFileKey(fileID: Array(0..<16), keyARN: "arn:aws:kms:local:1:key/k", ciphertextBlob: [1, 2, 3])
        #expect(try WrappedFileKey(decoding: attribute.encoded) == attribute)
        var bytes = attribute.encoded
        #expect(throws: FileKeyError.malformedAttribute) { try WrappedFileKey(decoding: Array(bytes.dropLast())) }
        #expect(throws: FileKeyError.malformedAttribute) { try WrappedFileKey(decoding: bytes + [0]) }
        bytes[0] = 2
        #expect(throws: FileKeyError.malformedAttribute) { try WrappedFileKey(decoding: bytes) }
        #expect(throws: FileKeyError.malformedAttribute) { try WrappedFileKey(decoding: []) }
    }

    /// New files get their own keys (from the pool for the default key, directly for others), and
    /// an existing file's key unwraps from its header and attribute.
    @Test(arguments: [false, true]) func newAndExistingFiles(pool: Bool) throws {
        let f = try Fixture()
        let keys = f.keys(pool: pool)
        let a = try keys.newFile(keyID: f.keyID), b = try keys.newFile(keyID: f.keyID)
        #expect(a.key != b.key && a.header.fileID != b.header.fileID)
        #expect(a.attribute.wrapped?.keyARN == f.keyID && a.attribute.fileID == a.header.fileID.bytes)
        // A fresh FileKeys (empty cache: a remount) unwraps through the service.
        let remounted = f.keys(pool: false)
        #expect(try remounted.key(header: a.header, attribute: a.attribute) == a.key)
        // Another key than the pool's is asked for directly.
        let other = try f.engine.createKey(CreateKeyRequest(), caller: f.client.caller).keyMetadata.arn
        #expect(try keys.newFile(keyID: other).attribute.wrapped?.keyARN == other)
    }

    /// One file's attribute put on another file: refused, never the wrong key.
    @Test func attributeOfAnotherFileNeverUnwraps() throws {
        let f = try Fixture()
        let keys = f.keys()
        let a = try keys.newFile(keyID: f.keyID), b = try keys.newFile(keyID: f.keyID)
        #expect(throws: FileKeyError.fileIDMismatch) { try keys.key(header: b.header, attribute: a.attribute) }
        // Even with the file ID in the attribute forged to match, the context (from b's header)
        // does not fit a's wrapped key.
        var forged = try #require(a.attribute.wrapped)
        forged.fileID = b.header.fileID.bytes
        let error = try #require(throws: KMSClientError.self) { try f.keys().key(header: b.header, attribute: .wrapped(forged)) }
        #expect(error.kind == .invalidCiphertext && error.errno == EIO)
        // Nor does a key from another volume.
        #expect(throws: KMSClientError.self) { try f.keys(volume: "vol-2").key(header: a.header, attribute: a.attribute) }
    }
}

extension FileKeyAttribute {
    var wrapped: WrappedFileKey? { if case let .wrapped(wrapped) = self { wrapped } else { nil } }
}
