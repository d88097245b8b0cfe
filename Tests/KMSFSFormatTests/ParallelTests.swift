import Dispatch
import KMSFSCrypto
import Synchronization
import Testing
@testable import KMSFSFormat

@Suite struct ParallelTests {
    /// With fixed nonces, a parallel seal gives exactly the bytes of a serial one, for runs that
    /// split into uneven stripes; and each opens the other's output.
    @Test(arguments: [2, 3, 17, 256])
    func parallelEqualsSerial(chunks: Int) throws {
        let key = try SecretBytes.random(count: 32)
        let header = FileHeader(chunkSize: 4096, fileID: try .random())
        let serial = ChunkCipher(key: key, header: header, parallelism: .serial, nonces: VectorNonces())
        let parallel = ChunkCipher(key: key, header: header, parallelism: ChunkParallelism(cores: 2, minimumParallelBytes: 0), nonces: VectorNonces())
        let plaintext = patternBytes(chunks * 4096 - 100)
        func seal(_ cipher: ChunkCipher) throws -> [UInt8] {
            var out = [UInt8](repeating: 0, count: cipher.geometry.cipherLength(forPlainLength: plaintext.count, endsFile: true))
            try out.withUnsafeMutableBytes { o in try plaintext.withUnsafeBytes { try cipher.seal($0, firstChunk: 7, endsFile: true, into: o) } }
            return out
        }
        let a = try seal(serial), b = try seal(parallel)
        #expect(a == b)
        var opened = [UInt8](repeating: 0, count: plaintext.count)
        try opened.withUnsafeMutableBytes { o in try b.withUnsafeBytes { try serial.open($0, firstChunk: 7, endsFile: true, into: o) } }
        #expect(opened == plaintext)
        // The first failing chunk is the one reported, whichever stripe finishes first.
        var damaged = a
        damaged[damaged.count - 1] ^= 1
        damaged[4136 + 50] ^= 1
        #expect(throws: FormatError.authenticationFailed(chunk: 8)) {
            try opened.withUnsafeMutableBytes { o in try damaged.withUnsafeBytes { try parallel.open($0, firstChunk: 7, endsFile: true, into: o) } }
        }
    }

    /// One cipher shared by many threads, each with its own file region, as FUSE workers will.
    @Test func sharedCipherAcrossThreads() throws {
        let key = try SecretBytes.random(count: 32)
        let header = FileHeader(chunkSize: 16384, fileID: try .random())
        let cipher = ChunkCipher(key: key, header: header, parallelism: ChunkParallelism(minimumParallelBytes: 0))
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 8) { worker in
            let plaintext = patternBytes(5 * 16384, seed: UInt8(worker))
            var sealed = [UInt8](repeating: 0, count: cipher.geometry.cipherLength(forPlainLength: plaintext.count, endsFile: false))
            var opened = [UInt8](repeating: 0, count: plaintext.count)
            do {
                for _ in 0..<20 {
                    try sealed.withUnsafeMutableBytes { o in try plaintext.withUnsafeBytes { try cipher.seal($0, firstChunk: Int64(worker), endsFile: false, into: o) } }
                    try opened.withUnsafeMutableBytes { o in try sealed.withUnsafeBytes { try cipher.open($0, firstChunk: Int64(worker), endsFile: false, into: o) } }
                    if opened != plaintext { failures.withLock { $0 += 1 } }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }
}
