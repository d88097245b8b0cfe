import Foundation
import KMSClient
import KMSEngine
@testable import KMSFSVolume
import Testing

@Suite struct VolumeInitializerTests {
    final class Scratch {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-volume-\(UUID().uuidString)").path
        var cipher: String { path + "/cipher" }
        init() throws { try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }
        deinit { try? FileManager.default.removeItem(atPath: path) }
    }

    @Test func embeddedVolumeWithItsOwnKey() throws {
        let scratch = try Scratch()
        let configuration = try VolumeInitializer.initialize(cipherDirectory: scratch.cipher, options: .init())
        #expect(try VolumeConfiguration.load(cipherDirectory: scratch.cipher) == configuration)
        #expect(configuration.chunkSize == 16384)
        guard case let .embedded(embedded) = configuration.keyService else { Issue.record("not embedded"); return }
        let store = EmbeddedStore.of(cipherDirectory: scratch.cipher, options: .init())
        // The key store and root key live beside the backing directory, not inside it.
        #expect(store.storePath == scratch.cipher + ".keys/keys.sqlite")
        #expect(try FileManager.default.contentsOfDirectory(atPath: scratch.cipher) == [VolumeConfiguration.fileName])
        let mode = try FileManager.default.attributesOfItem(atPath: store.rootKeyFile)[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // The configuration holds no secret.
        let text = try String(contentsOfFile: scratch.cipher + "/" + VolumeConfiguration.fileName, encoding: .utf8)
        let rootKeyHex = try String(contentsOfFile: store.rootKeyFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(!text.contains(rootKeyHex))
        // The default key exists, with its alias, and makes data keys for the volume's files.
        let engine = try store.openEngine()
        let caller = Caller(account: embedded.account, region: embedded.region, viaService: "kmsfs")
        let byAlias = try engine.describeKey(keyID: "alias/kmsfs/\(configuration.volumeID)", caller: caller).keyMetadata
        #expect(byAlias.arn == configuration.defaultKeyID)
        let client = EmbeddedKMSClient(engine: engine, caller: caller)
        #expect(try client.generateDataKey(keyID: configuration.defaultKeyID, context: ["kmsfs:volume": configuration.volumeID]).plaintext.count == 32)
    }

    @Test func refusesNonEmptyAndInitializedDirectories() throws {
        let scratch = try Scratch()
        try VolumeInitializer.initialize(cipherDirectory: scratch.cipher, options: .init())
        #expect(throws: VolumeError.alreadyInitialized(scratch.cipher)) {
            try VolumeInitializer.initialize(cipherDirectory: scratch.cipher, options: .init())
        }
        let other = scratch.path + "/other"
        try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
        FileManager.default.createFile(atPath: other + "/data.txt", contents: Data("x".utf8))
        #expect(throws: VolumeError.notEmpty(other)) { try VolumeInitializer.initialize(cipherDirectory: other, options: .init()) }
        var bad = VolumeInitializer.Options()
        bad.chunkSize = 5000
        #expect(throws: VolumeError.self) { try VolumeInitializer.initialize(cipherDirectory: scratch.path + "/third", options: bad) }
        // Without --kms-key a remote volume asks for alias/aws/kmsfs; a service it cannot reach
        // leaves no volume behind.
        var remoteWithoutKey = VolumeInitializer.Options()
        remoteWithoutKey.remote = .init(endpoint: "http://127.0.0.1:1", region: "us-east-1", profile: nil)
        #expect(throws: (any Error).self) { try VolumeInitializer.initialize(cipherDirectory: scratch.path + "/fourth", options: remoteWithoutKey) }
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/fourth/" + VolumeConfiguration.fileName))
    }

    /// ramfs keeps no user xattrs: init refuses it with a clear error (root only: it mounts one).
    @Test(.enabled(if: getuid() == 0)) func refusesAFilesystemWithoutUserXattrs() throws {
        let scratch = try Scratch()
        let mountPoint = scratch.path + "/ramfs"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        guard mount("none", mountPoint, "ramfs", 0, nil) == 0 else {
            Issue.record("cannot mount ramfs: \(String(cString: strerror(errno)))")
            return
        }
        defer { umount(mountPoint) }
        let error = try #require(throws: VolumeError.self) {
            try VolumeInitializer.initialize(cipherDirectory: mountPoint, options: .init())
        }
        #expect(error.description.contains("does not support user extended attributes"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: mountPoint).isEmpty)  // nothing left behind
    }
}
