import Foundation
import Testing
import KMSFSTestSupport
@testable import KMSFSCrypto

@Suite struct AESGCMTests {
    struct Case: Decodable { let key, nonce, aad, plaintext, ciphertext, tag: String }
    struct Vectors: Decodable { let cases: [Case] }

    static let vectors: [Case] = {
        let data = try! Data(contentsOf: fixture("aes_gcm_vectors.json"))
        return try! JSONDecoder().decode(Vectors.self, from: data).cases
    }()

    /// McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14 (AES-256).
    @Test func specificationVectors() throws {
        let key = SecretBytes(copying: [UInt8](repeating: 0, count: 32))
        let nonce = [UInt8](repeating: 0, count: 12)
        #expect(hex(try AESGCM.seal(key: key, nonce: nonce, plaintext: [])) == "530f8afbc74536b9a963b4f1c4cb738b")
        #expect(hex(try AESGCM.seal(key: key, nonce: nonce, plaintext: [UInt8](repeating: 0, count: 16)))
                == "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919")
    }

    /// Lengths 0 to 5000 against Python's `cryptography` (Fixtures/make_vectors.py), one reused
    /// context for all cases of a key, alternating seal and open.
    @Test func crossCheckAgainstReference() throws {
        #expect(Self.vectors.count >= 40)
        for vector in Self.vectors {
            let key = SecretBytes(copying: bytes(hex: vector.key))
            let sealed = try AESGCM.seal(key: key, nonce: bytes(hex: vector.nonce), additionalData: bytes(hex: vector.aad),
                                         plaintext: bytes(hex: vector.plaintext))
            #expect(hex(sealed) == vector.ciphertext + vector.tag)
            let opened = try AESGCM.open(key: key, nonce: bytes(hex: vector.nonce), additionalData: bytes(hex: vector.aad),
                                         sealed: bytes(hex: vector.ciphertext + vector.tag))
            #expect(hex(opened) == vector.plaintext)
        }
    }

    @Test func oneContextAlternatesSealAndOpenInPlace() throws {
        let context = try AESGCMContext(key: .random(count: 32))
        for length in [0, 1, 100, 4096, 5000] {
            var buffer = try SecureRandom.bytes(count: length)
            let original = buffer
            let nonce = try SecureRandom.bytes(count: 12)
            var tag = [UInt8](repeating: 0, count: 16)
            let aad: [UInt8] = [1, 2, 3]
            try buffer.withUnsafeMutableBytes { buf in
                try nonce.withUnsafeBytes { n in try aad.withUnsafeBytes { a in try tag.withUnsafeMutableBytes { t in
                    try context.seal(nonce: n, additionalData: a, plaintext: UnsafeRawBufferPointer(buf), ciphertext: buf, tag: t)
                } } }
            }
            #expect(length == 0 || buffer != original)
            try buffer.withUnsafeMutableBytes { buf in
                try nonce.withUnsafeBytes { n in try aad.withUnsafeBytes { a in try tag.withUnsafeBytes { t in
                    try context.open(nonce: n, additionalData: a, ciphertext: UnsafeRawBufferPointer(buf), tag: t, plaintext: buf)
                } } }
            }
            #expect(buffer == original)
        }
    }

    /// Any change to ciphertext, tag, nonce, additional data or key fails, and a failed open
    /// leaves zeros, never unauthenticated plaintext.
    @Test func everyChangeFailsAndReleasesNothing() throws {
        let vector = Self.vectors.first { bytes(hex: $0.plaintext).count == 33 }!
        let key = bytes(hex: vector.key), nonce = bytes(hex: vector.nonce), aad = bytes(hex: vector.aad)
        let sealed = bytes(hex: vector.ciphertext + vector.tag)
        func open(key: [UInt8], nonce: [UInt8], aad: [UInt8], sealed: [UInt8]) -> [UInt8]? {
            try? AESGCM.open(key: SecretBytes(copying: key), nonce: nonce, additionalData: aad, sealed: sealed)
        }
        #expect(open(key: key, nonce: nonce, aad: aad, sealed: sealed) != nil)
        for bit in 0..<(sealed.count * 8) {
            var changed = sealed
            changed[bit / 8] ^= 1 << (bit % 8)
            #expect(open(key: key, nonce: nonce, aad: aad, sealed: changed) == nil)
        }
        for bit in 0..<(nonce.count * 8) {
            var changed = nonce
            changed[bit / 8] ^= 1 << (bit % 8)
            #expect(open(key: key, nonce: changed, aad: aad, sealed: sealed) == nil)
        }
        #expect(open(key: key, nonce: nonce, aad: aad + [0], sealed: sealed) == nil)
        var otherKey = key
        otherKey[0] ^= 1
        #expect(open(key: otherKey, nonce: nonce, aad: aad, sealed: sealed) == nil)

        // The output buffer holds zeros after a failed open, not the attempted decryption.
        let context = try AESGCMContext(key: SecretBytes(copying: key))
        var output = [UInt8](repeating: 0xEE, count: sealed.count - 16)
        var tampered = sealed
        tampered[0] ^= 0x80
        #expect(throws: CryptoError.authenticationFailure) {
            try output.withUnsafeMutableBytes { out in
                try nonce.withUnsafeBytes { n in try aad.withUnsafeBytes { a in try tampered.withUnsafeBytes { s in
                    try context.open(nonce: n, additionalData: a, ciphertext: UnsafeRawBufferPointer(rebasing: s[0..<out.count]),
                                     tag: UnsafeRawBufferPointer(rebasing: s[out.count...]), plaintext: out)
                } } }
            }
        }
        #expect(output.allSatisfy { $0 == 0 })
    }

    /// Many threads share one pool: each gets a context of its own, and results stay correct.
    @Test func poolServesConcurrentThreads() throws {
        let key = try SecretBytes.random(count: 32)
        let pool = AESGCMContextPool(key: key, maximumIdle: 4)
        let vector = Self.vectors[5]
        let reference = try AESGCM.seal(key: key, nonce: bytes(hex: vector.nonce), plaintext: bytes(hex: vector.plaintext))
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 64) { _ in
            for _ in 0..<50 {
                let plaintext = bytes(hex: vector.plaintext), nonce = bytes(hex: vector.nonce)
                var out = [UInt8](repeating: 0, count: plaintext.count + 16)
                try? pool.withContext { context in
                    try out.withUnsafeMutableBytes { o in try plaintext.withUnsafeBytes { p in try nonce.withUnsafeBytes { n in
                        try context.seal(nonce: n, additionalData: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: p,
                                         ciphertext: UnsafeMutableRawBufferPointer(rebasing: o[0..<p.count]),
                                         tag: UnsafeMutableRawBufferPointer(rebasing: o[p.count...]))
                    } } }
                }
                if out != reference { failures.withLock { $0 += 1 } }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }
}

import Synchronization

/// XAES-256-GCM: C2SP's published vectors, and what the per-seal key derivation must give.
@Suite struct XAESGCMTests {
    func seal(key: UInt8, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        let context = try XAESGCMContext(key: SecretBytes(copying: [UInt8](repeating: key, count: 32)))
        var output = [UInt8](repeating: 0, count: plaintext.count + 16)
        try output.withUnsafeMutableBytes { out in
            try nonce.withUnsafeBytes { nonce in try aad.withUnsafeBytes { aad in try plaintext.withUnsafeBytes { plain in
                try context.seal(nonce: nonce, additionalData: aad, plaintext: plain,
                                 ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[0..<plain.count]),
                                 tag: UnsafeMutableRawBufferPointer(rebasing: out[plain.count...]))
            } } }
        }
        return output
    }

    func open(key: UInt8, nonce: [UInt8], sealed: [UInt8], aad: [UInt8]) throws -> [UInt8] {
        let context = try XAESGCMContext(key: SecretBytes(copying: [UInt8](repeating: key, count: 32)))
        var plaintext = [UInt8](repeating: 0, count: sealed.count - 16)
        try plaintext.withUnsafeMutableBytes { plain in
            try nonce.withUnsafeBytes { nonce in try aad.withUnsafeBytes { aad in try sealed.withUnsafeBytes { sealed in
                try context.open(nonce: nonce, additionalData: aad, ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<plain.count]),
                                 tag: UnsafeRawBufferPointer(rebasing: sealed[plain.count...]), plaintext: plain)
            } } }
        }
        return plaintext
    }

    @Test func c2spVectors() throws {
        let nonce = Array("ABCDEFGHIJKLMNOPQRSTUVWX".utf8), plaintext = Array("XAES-256-GCM".utf8)
        #expect(hex(try seal(key: 1, nonce: nonce, plaintext: plaintext, aad: []))
                == "ce546ef63c9cc60765923609" + "b33a9a1974e96e52daf2fcf7075e2271")
        #expect(hex(try seal(key: 3, nonce: nonce, plaintext: plaintext, aad: Array("c2sp.org/XAES-256-GCM".utf8)))
                == "986ec1832593df5443a17943" + "7fd083bf3fdb41abd740a21f71eb769d")
    }

    /// Each half of the nonce matters (the first derives the key, the second is GCM's nonce),
    /// and one context serves any number of seals and opens in turn.
    @Test func everyNonceBitCountsAndContextsAreReusable() throws {
        let nonce = Array("ABCDEFGHIJKLMNOPQRSTUVWX".utf8), plaintext = Array("XAES-256-GCM".utf8)
        let sealed = try seal(key: 1, nonce: nonce, plaintext: plaintext, aad: [9])
        #expect(try open(key: 1, nonce: nonce, sealed: sealed, aad: [9]) == plaintext)
        for bit in [0, 95, 96, 191] {
            var changed = nonce
            changed[bit / 8] ^= 1 << (bit % 8)
            #expect(throws: CryptoError.authenticationFailure) { try open(key: 1, nonce: changed, sealed: sealed, aad: [9]) }
        }
        #expect(throws: CryptoError.authenticationFailure) { try open(key: 2, nonce: nonce, sealed: sealed, aad: [9]) }
        let context = try XAESGCMContext(key: SecretBytes(copying: [UInt8](repeating: 1, count: 32)))
        for round in 0..<3 {
            var n = nonce
            n[0] = UInt8(round)
            var out = [UInt8](repeating: 0, count: plaintext.count + 16)
            try out.withUnsafeMutableBytes { out in try n.withUnsafeBytes { n in try plaintext.withUnsafeBytes { p in
                try context.seal(nonce: n, additionalData: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: p,
                                 ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[0..<p.count]),
                                 tag: UnsafeMutableRawBufferPointer(rebasing: out[p.count...]))
            } } }
            #expect(out == (try seal(key: 1, nonce: n, plaintext: plaintext, aad: [])))
        }
    }
}
