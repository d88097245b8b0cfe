import Foundation
import KMSFSCrypto
import Testing
@testable import KMSEngine
import KMSStore

/// A real process doing key-store work is killed with SIGKILL at random moments; the store it
/// leaves must open, hold material for every key version, keep every alias pointing at a key,
/// and carry an intact audit chain.
@Suite struct CrashConsistencyTests {
    static var workload: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("kmsengine-crash-workload")
    }

    @Test func storeSurvivesSIGKILL() throws {
        let f = try EngineFixture()
        let rootFile = f.directory.appendingPathComponent("root.hex")
        try Data(f.rootKey.hexEncoded()).write(to: rootFile)
        var rng = SystemRandomNumberGenerator()
        for trial in 0..<6 {
            try f.close()
            let process = Process()
            process.executableURL = try #require(FileManager.default.isExecutableFile(atPath: Self.workload.path) ? Self.workload : nil,
                                                 "build the kmsengine-crash-workload target first")
            process.arguments = [f.storePath, rootFile.path]
            let output = Pipe()
            process.standardOutput = output
            try process.run()
            let ready = output.fileHandleForReading.availableData
            #expect(String(decoding: ready, as: UTF8.self).contains("ready"), "trial \(trial)")
            usleep(UInt32.random(in: 5_000...150_000, using: &rng))
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            #expect(process.terminationReason == .uncaughtSignal)

            try f.reopen()
            // While this engine has the store open, nobody else may.
            #expect(throws: StoreError.self) { try KMSEngine.open(path: f.storePath, rootKey: f.rootKey) }
            let state = f.engine.state.withLock { $0 }
            #expect(state.keys.count > 0)
            for key in state.keys.values {
                #expect(key.material.count == key.record.versions.count, "key \(key.record.keyID) lost material")
            }
            for alias in state.aliases.values {
                #expect(alias.targetKeyID.flatMap { state.keys[KeyIdentity(account: alias.account, region: alias.region, keyID: $0)] } != nil, "alias \(alias.aliasName) dangles")
            }
            #expect(try f.engine.verifyAudit().isIntact, "trial \(trial)")
            // Every surviving usable key still works.
            if let usable = state.keys.values.first(where: { $0.record.state == .enabled }) {
                let blob = try f.engine.encrypt(keyID: usable.record.keyID, plaintext: secret("after crash"), caller: f.caller).ciphertextBlob
                #expect(text(try f.engine.decrypt(ciphertextBlob: blob, caller: f.caller).plaintext) == "after crash")
            }
        }
    }
}
