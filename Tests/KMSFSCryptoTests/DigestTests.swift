import Testing
import KMSFSTestSupport
import KMSFSCrypto

/// Published vectors: FIPS 180-2 (SHA-256), RFC 4231 (HMAC-SHA-256), RFC 5869 (HKDF).
@Suite struct DigestTests {
    @Test func sha256() {
        #expect(hex(SHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(hex(SHA256.hash([UInt8]())) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test func hmacRFC4231() {
        #expect(hex(HMAC.sha256(key: [UInt8](repeating: 0x0b, count: 20), message: Array("Hi There".utf8)))
                == "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7")
        #expect(hex(HMAC.sha256(key: SecretBytes(copying: Array("Jefe".utf8)), message: Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    /// The reusable context gives the one-shot's MACs, message after message.
    @Test func hmacContextMatchesOneShot() throws {
        let context = try HMACContext(key: SecretBytes(copying: Array("Jefe".utf8)))
        for _ in 0..<3 {
            #expect(hex(context.mac(Array("what do ya ".utf8), Array("want for nothing?".utf8)))
                    == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        }
        #expect(context.mac([1, 2, 3]) == HMAC.sha256(key: Array("Jefe".utf8), message: [UInt8]([1, 2, 3])))
    }

    @Test func hkdfRFC5869Case1() throws {
        let okm = try HKDF.sha256(
            inputKeyMaterial: SecretBytes(copying: [UInt8](repeating: 0x0b, count: 22)),
            salt: Array(0x00...0x0c), info: Array(0xf0...0xf9), outputByteCount: 42)
        #expect(okm.withUnsafeBytes { hex(Array($0)) }
                == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865")
    }

    @Test func hkdfRefusesTooLongOutput() {
        #expect(throws: CryptoError.self) {
            try HKDF.sha256(inputKeyMaterial: SecretBytes(copying: [1, 2, 3]), outputByteCount: 255 * 32 + 1)
        }
    }
}
