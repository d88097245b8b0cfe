import Testing
import KMSFSTestSupport
import KMSFSCrypto

/// RFC 7914's scrypt vectors, and the costs a stored record may not name.
@Suite struct ScryptTests {
    @Test func rfc7914() throws {
        let key = try Scrypt.derive(passphrase: SecretBytes(copying: Array("password".utf8)), salt: Array("NaCl".utf8),
                                    cost: Scrypt.Cost(n: 1024, r: 8, p: 16), byteCount: 64)
        #expect(key.withUnsafeBytes { hex(Array($0)) } == """
            fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640
            """)
    }

    /// A planted record cannot make a mount allocate without bound, nor make guessing cheap.
    @Test func unacceptableCostsAreRefusedBeforeAnyWork() {
        for cost in [Scrypt.Cost(n: 512, r: 8, p: 1), Scrypt.Cost(n: 1000, r: 8, p: 1), Scrypt.Cost(n: 1 << 30, r: 32, p: 1),
                     Scrypt.Cost(n: 1 << 17, r: 0, p: 1), Scrypt.Cost(n: 1 << 17, r: 8, p: 17), Scrypt.Cost(n: 1 << 62, r: 32, p: 16),
                     Scrypt.Cost(n: 1 << 22, r: 7, p: 1), Scrypt.Cost(n: 1 << 17, r: 8, p: 16), Scrypt.Cost(n: 1 << 21, r: 8, p: 1)] {
            #expect(!cost.isAcceptable)
            #expect(throws: CryptoError.self) {
                try Scrypt.derive(passphrase: SecretBytes(copying: [1]), salt: [2], cost: cost, byteCount: 32)
            }
        }
        #expect(Scrypt.Cost.interactive.isAcceptable && Scrypt.Cost.interactive.memory() == 128 << 20 + 1024)
        #expect(Scrypt.Cost(n: 1 << 19, r: 8, p: 1).isAcceptable && Scrypt.Cost(n: 1 << 17, r: 8, p: 8).isAcceptable)
    }
}
