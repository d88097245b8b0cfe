import Dispatch
import KMSFSCrypto
import Synchronization
import Testing

/// Signing and verifying contexts are set up once per key and scheme and then lent to one call at
/// a time: these check that reuse changes no answer.
@Suite struct AsymmetricKeyTests {
    /// A rejected signature leaves its context fit for the next call, and a context of one scheme
    /// never serves another (RSA's two paddings on one key must not accept each other's signatures).
    @Test func contextsAreReusedAcrossAnswersAndKeptPerScheme() throws {
        let key = try AsymmetricKey.generate(.rsa(bits: 2048))
        let message = Array("the message".utf8)
        let pss = try key.sign(message, scheme: .rsaPSS(.sha256))
        let pkcs1 = try key.sign(message, scheme: .rsaPKCS1(.sha256))
        for _ in 0..<3 {
            #expect(key.verify(pss, for: message, scheme: .rsaPSS(.sha256)))
            #expect(!key.verify(pss, for: message, scheme: .rsaPKCS1(.sha256)))
            #expect(!key.verify(pkcs1, for: message, scheme: .rsaPSS(.sha256)))
            #expect(key.verify(pkcs1, for: message, scheme: .rsaPKCS1(.sha256)))
            #expect(!key.verify(pss, for: Array("another message".utf8), scheme: .rsaPSS(.sha256)))
        }
        let digest = SHA256.hash(message)
        #expect(key.verify(pss, for: digest, scheme: .rsaPSS(.sha256), prehashed: true))
        #expect(!key.verify(pss, for: digest, scheme: .rsaPSS(.sha384), prehashed: true))
        // A public key read back verifies what the pair signed.
        let publicKey = try AsymmetricKey(publicKeyDER: key.publicKeyDER())
        #expect(publicKey.verify(pkcs1, for: message, scheme: .rsaPKCS1(.sha256)))
    }

    /// More concurrent calls than contexts kept idle: every call gets a context of its own.
    @Test func concurrentCallsOnOneKey() throws {
        let key = try AsymmetricKey.generate(.ec(.p256))
        let failures = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: 64) { index in
            let message = Array("message \(index)".utf8)
            for _ in 0..<20 {
                guard let signature = try? key.sign(message, scheme: .ecdsa(.sha256)),
                      key.verify(signature, for: message, scheme: .ecdsa(.sha256)),
                      !key.verify(signature, for: message + [0], scheme: .ecdsa(.sha256))
                else {
                    failures.add(1, ordering: .relaxed)
                    continue
                }
            }
        }
        #expect(failures.load(ordering: .relaxed) == 0)
    }
}
