import CLinux
import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat
@testable import KMSFSVolume
import Testing

@Suite struct BackingFileTests {
    /// An initialized embedded volume and its FileKeys, as a mount would set them up.
    final class Volume {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("backing-\(UUID().uuidString)").path
        var cipher: String { root + "/cipher" }
        let configuration: VolumeConfiguration
        let engine: KMSEngine
        let client: EmbeddedKMSClient

        init() throws {
            configuration = try VolumeInitializer.initialize(cipherDirectory: root + "/cipher", options: .init())
            guard case let .embedded(embedded) = configuration.keyService else { throw VolumeError.io("not embedded") }
            let store = EmbeddedStore.of(cipherDirectory: root + "/cipher", options: .init())
            engine = try store.openEngine()
            client = EmbeddedKMSClient(engine: engine, caller: Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs"))
        }
        deinit { try? FileManager.default.removeItem(atPath: root) }

        /// A fresh FileKeys with an empty cache: what a new mount has.
        func keys() -> FileKeys {
            FileKeys(volumeID: configuration.volumeID, chunkSize: configuration.chunkSize, client: client, pool: nil, cache: DataKeyCache())
        }
    }

    @Test func createWriteReopenRead() throws {
        let v = try Volume()
        let path = v.cipher + "/report.txt"
        let secret = Array("quarterly numbers: 42, 43, 44 — do not share".utf8)
        let (fd, file) = try BackingFile.create(path: path, keys: v.keys(), keyID: v.configuration.defaultKeyID)
        try secret.withUnsafeBytes { try file.write($0, at: 0) }
        close(fd)
        // The backing file holds no plaintext; its attribute holds the wrapped key.
        let stored = try #require(FileManager.default.contents(atPath: path))
        #expect(Array(stored).firstRange(of: Array("quarterly".utf8)) == nil)
        // A new mount (empty cache) reads it back through the key service.
        let reopened = open(path, O_RDWR)
        defer { close(reopened) }
        let again = try BackingFile.open(fd: reopened, keys: v.keys())
        var buffer = [UInt8](repeating: 0, count: 100)
        let count = try buffer.withUnsafeMutableBytes { try again.read(into: $0, at: 0) }
        #expect(Array(buffer[0..<count]) == secret)

        let (directory, configuration) = try FileInfo.volume(containing: path)
        let info = try FileInfo.read(backingPath: path, cipherDirectory: directory, volume: configuration)
        #expect(info.keyARN == v.configuration.defaultKeyID && info.plaintextSize == Int64(secret.count))
        #expect(info.chunkSize == 16384 && info.formatVersion == FileHeader.currentVersion && FileHeader.currentVersion == 2)
        #expect(info.encryptionContext == ["kmsfs:volume": v.configuration.volumeID, "kmsfs:file": info.fileID])
        #expect(throws: StorageError.self) { try BackingFile.create(path: path, keys: v.keys(), keyID: v.configuration.defaultKeyID) }
    }

    /// A copy without extended attributes, or with another file's attribute: an error, never data.
    @Test func lostOrSwappedAttributes() throws {
        let v = try Volume()
        let a = v.cipher + "/a", b = v.cipher + "/b"
        for path in [a, b] {
            let (fd, file) = try BackingFile.create(path: path, keys: v.keys(), keyID: v.configuration.defaultKeyID)
            try Array(path.utf8).withUnsafeBytes { try file.write($0, at: 0) }
            close(fd)
        }
        let copy = v.cipher + "/copy"
        try FileManager.default.copyItem(atPath: a, toPath: copy)
        removexattr(copy, WrappedFileKey.attributeName)  // as cp without --preserve=xattr leaves it
        let copyFD = open(copy, O_RDONLY)
        defer { close(copyFD) }
        #expect(throws: FileKeyError.missingAttribute) { try BackingFile.open(fd: copyFD, keys: v.keys()) }

        var value = [UInt8](repeating: 0, count: 4096)
        let count = getxattr(a, WrappedFileKey.attributeName, &value, value.count)
        #expect(setxattr(b, WrappedFileKey.attributeName, value, count, 0) == 0)
        let bFD = open(b, O_RDONLY)
        defer { close(bFD) }
        #expect(throws: FileKeyError.fileIDMismatch) { try BackingFile.open(fd: bFD, keys: v.keys()) }
    }
}
