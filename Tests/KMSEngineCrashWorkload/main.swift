// Runs management and cryptographic calls against a key store until killed.
// Usage: kmsengine-crash-workload STORE ROOTKEYFILE
// Prints "ready" once the first key exists, so the test kills it mid-workload, not at start-up.
import Foundation
import KMSEngine
import KMSFSCrypto

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: kmsengine-crash-workload STORE ROOTKEYFILE\n".utf8))
    exit(2)
}
do {
    let engine = try KMSEngine.open(path: arguments[1], rootKey: RootKey(loading: .file(arguments[2])))
    let caller = Caller(account: "111122223333", region: "eu-west-1", requestID: "crash")
    var announced = false
    var n = 0
    while true {
        n += 1
        var request = CreateKeyRequest()
        request.description = "crash \(n)"
        request.tags = [Tag(tagKey: "n", tagValue: "\(n)")]
        let key = try engine.createKey(request, caller: caller).keyMetadata.keyId
        try engine.createAlias(aliasName: "alias/crash-\(getpid())-\(n)", targetKeyID: key, caller: caller)
        _ = try engine.rotateKeyOnDemand(keyID: key, caller: caller)
        for _ in 0..<20 {
            _ = try engine.generateDataKey(keyID: key, keySpec: .aes256, encryptionContext: ["n": "\(n)"], caller: caller)
        }
        if n % 3 == 0 { _ = try engine.scheduleKeyDeletion(keyID: key, pendingWindowInDays: 7, caller: caller) }
        if !announced {
            FileHandle.standardOutput.write(Data("ready\n".utf8))
            announced = true
        }
    }
} catch {
    FileHandle.standardError.write(Data("workload failed: \(error)\n".utf8))
    exit(1)
}
