@testable import KMSClient
import KMSFSCrypto
import Testing

/// A data key goes from the answer's bytes into a secret, and the answer keeps no copy of it.
@Suite struct SecretMemberTests {
    @Test func takesTheKeyAndBlanksIt() throws {
        let key = (0..<32).map { UInt8($0 * 7 & 0xff) }
        let encoded = "AAcOFRwjKjE4P0ZNVFtiaXB3foWMk5qhqK+2vcTL0tk="
        var body = Array("{\"CiphertextBlob\":\"AQID\",\"KeyId\":\"arn:k\", \"Plaintext\" :\t\"\(encoded)\"}".utf8)
        let secret = try #require(SecretMember.take("Plaintext", from: &body))
        #expect(secret == SecretBytes(copying: key))
        #expect(body.firstRange(of: Array(encoded.utf8)) == nil)
        #expect(String(decoding: body, as: UTF8.self).contains("\"Plaintext\" :\t\"" + String(repeating: "A", count: 44) + "\""))
    }

    @Test func leavesWhatItDoesNotRecognize() {
        for text in ["{\"Plaintext\":\"AAE\"}", "{\"Plaintext\":\"A*==\"}", "{\"Plaintext\":12}", "{\"Pl\\u0061intext\":\"AAEC\"}",
                     "{\"Plaintext\":\"AAEC", "{\"Other\":\"AAEC\"}", "{\"Plaintext\"", "{\"Plaintext\":\"====\"}"] {
            var body = Array(text.utf8)
            #expect(SecretMember.take("Plaintext", from: &body) == nil, "\(text)")
            #expect(body == Array(text.utf8))
        }
        var empty = Array("{\"Plaintext\":\"\"}".utf8)
        #expect(SecretMember.take("Plaintext", from: &empty)?.count == 0)
    }
}
