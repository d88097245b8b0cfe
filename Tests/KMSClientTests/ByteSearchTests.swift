@testable import KMSClient
import Testing

/// The response parser's byte search agrees with a plain scan at every position.
@Suite struct ByteSearchTests {
    @Test func agreesWithANaiveScan() {
        let cases: [([UInt8], [UInt8])] = [
            (Array("HTTP/1.1 200 OK\r\n\r\nbody".utf8), [13, 10, 13, 10]),
            (Array("\r\n\r\n".utf8), [13, 10, 13, 10]),
            (Array("\r\r\n\r\r\n\r\n".utf8), [13, 10, 13, 10]),
            (Array("abc".utf8), Array("abcd".utf8)),
            (Array("aaaab".utf8), Array("aab".utf8)),
            ([], [13, 10]),
            (Array("x\"Plaintext\":\"\"Plaintext\"".utf8), Array("\"Plaintext\"".utf8)),
        ]
        for (haystack, needle) in cases {
            for start in 0...haystack.count + 1 {
                let naive = start > haystack.count ? nil : (start..<max(start, haystack.count - needle.count + 1)).first {
                    Array(haystack[$0..<$0 + needle.count]) == needle
                }.map { $0..<$0 + needle.count }
                #expect(haystack.range(of: needle, from: start) == naive, "\(haystack) \(needle) from \(start)")
            }
        }
    }
}
