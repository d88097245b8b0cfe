import CLinux
import Testing
@testable import KMSFSCrypto

@Suite struct SecretBytesTests {
    @Test func neverPrintsItsContents() throws {
        let secret = SecretBytes(copying: Array("hunter2-hunter2-hunter2-hunter2!".utf8))
        #expect(secret.description == "<redacted 32 bytes>")
        #expect("\(secret)" == "<redacted 32 bytes>")
        #expect(String(reflecting: secret) == "<redacted 32 bytes>")
        #expect(!"\([secret])".contains("hunter2"))
    }

    @Test func comparesByContent() throws {
        let a = SecretBytes(copying: [1, 2, 3]), b = SecretBytes(copying: [1, 2, 3])
        #expect(a == b)
        #expect(a != SecretBytes(copying: [1, 2, 4]))
        #expect(a != SecretBytes(copying: [1, 2]))
        #expect(try SecretBytes.random(count: 32) != SecretBytes.random(count: 32))
    }

    @Test func wipingInitClearsTheSource() {
        var source: [UInt8] = Array(repeating: 0x5A, count: 32)
        let secret = SecretBytes(wiping: &source)
        #expect(source == Array(repeating: 0, count: 32))
        #expect(secret.withUnsafeBytes { Array($0) } == Array(repeating: 0x5A, count: 32))
    }

    /// The buffer handed back for release holds only zeros: the key is gone before the memory is freed.
    @Test func releaseSeesOnlyZeros() {
        var seen: [UInt8]? = nil
        do {
            let secret = SecretBytes(count: 32, beforeRelease: { seen = Array($0) }) { $0.initializeMemory(as: UInt8.self, repeating: 0xA7) }
            #expect(secret.withUnsafeBytes { $0.allSatisfy { $0 == 0xA7 } })
        }
        #expect(seen == Array(repeating: 0, count: 32))
    }

    @Test func failedInitializerWipes() {
        struct Boom: Error {}
        var seen: [UInt8]? = nil
        #expect(throws: Boom.self) {
            _ = try SecretBytes(count: 16, beforeRelease: { seen = Array($0) }) { (buffer) throws(Boom) in
                buffer.initializeMemory(as: UInt8.self, repeating: 0xA7)
                throw Boom()
            }
        }
        #expect(seen == Array(repeating: 0, count: 16))
    }

    /// Once the key heap is set up, secrets come from it — locked here, where the test runs as
    /// root or with a sufficient RLIMIT_MEMLOCK — and are still wiped before release.
    @Test func secretsLiveInTheLockedKeyHeap() throws {
        let before = try SecretBytes.random(count: 32)
        let outcome = ProcessHardening.lockKeyMemory(byteCount: 1 << 16)
        #expect(ProcessHardening.lockKeyMemory(byteCount: 1 << 16) == outcome)
        if CLinux_memlock_limit() >= 1 << 16 {
            #expect(outcome == .locked(byteCount: 1 << 16))
        } else {
            guard case let .unlocked(reason) = outcome else { Issue.record("locked beyond RLIMIT_MEMLOCK"); return }
            #expect(reason.contains("RLIMIT_MEMLOCK"))
        }
        #expect(!before.isInSecureHeap)
        var seen: [UInt8] = []
        do {
            let secret = try SecretBytes(count: 32, beforeRelease: { seen = Array($0) }) { $0.initializeMemory(as: UInt8.self, repeating: 0xAB) }
            #expect(secret.isInSecureHeap)
            #expect(secret.withUnsafeBytes { $0.allSatisfy { $0 == 0xAB } })
        }
        #expect(seen == [UInt8](repeating: 0, count: 32))
    }
}
