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
}
