import AWSSigV4
import Foundation
import KMSFSTestSupport
import Testing

@Suite struct SigV4Tests {
    static let credential = SigV4Credential(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let time = AmzDate.parse("20150830T123600Z")!

    struct Vectors: Decodable {
        struct Case: Decodable {
            let method, path, service, region, body: String
            let headers: [[String]]
            let sessionToken: String?
        }
        let cases: [String: Case]
    }

    static func vectors() throws -> [String: Vectors.Case] {
        try JSONDecoder().decode(Vectors.self, from: Data(contentsOf: fixture("sigv4_vectors.json"))).cases
    }

    static func request(_ c: Vectors.Case) -> SigV4Request {
        SigV4Request(method: c.method, path: c.path, headers: c.headers.map { ($0[0], $0[1]) }, body: Array(c.body.utf8))
    }

    /// The AWS SigV4 test suite's get-vanilla and post-vanilla requests (service "service").
    @Test func awsTestSuiteVanillaVectors() {
        let signer = SigV4Signer(credential: Self.credential, region: "us-east-1", service: "service")
        for (method, signature) in [("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
                                    ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b")] {
            let signed = signer.signed(SigV4Request(method: method, headers: [("Host", "example.amazonaws.com")], body: []), at: Self.time)
            #expect(signed.header("authorization") == "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, SignedHeaders=host;x-amz-date, Signature=\(signature)")
            let verifier = SigV4Verifier(service: "service")
            #expect((try? verifier.verify(signed, now: Self.time) { _ in Self.credential }) != nil)
        }
    }

    /// Requests signed by botocore (Fixtures/make_vectors.py) verify, and our signer produces the
    /// same Authorization header for them.
    @Test func botocoreSignedRequestsVerify() throws {
        for (name, c) in try Self.vectors() {
            let request = Self.request(c)
            let credential = SigV4Credential(accessKeyID: "AKIDEXAMPLE", secretAccessKey: Self.credential.secretAccessKey, sessionToken: c.sessionToken)
            let verified = try SigV4Verifier(service: "kms").verify(request, now: Self.time) { $0 == "AKIDEXAMPLE" ? credential : nil }
            #expect(verified == .init(accessKeyID: "AKIDEXAMPLE", region: c.region), "\(name)")
            // botocore signs before the HTTP layer adds Content-Length; sign the same headers.
            var unsigned = request
            unsigned.headers.removeAll { ["authorization", "x-amz-date", "x-amz-security-token", "content-length"].contains($0.0.lowercased()) }
            let ours = SigV4Signer(credential: credential, region: c.region, service: "kms").signed(unsigned, at: Self.time)
            #expect(ours.header("authorization") == request.header("authorization"), "\(name)")
        }
    }

    func rejection(_ change: (inout SigV4Request) -> Void, now: Date = SigV4Tests.time,
                   lookup: @escaping (String) -> SigV4Credential? = { $0 == "AKIDEXAMPLE" ? SigV4Tests.credential : nil }) throws -> SigV4Error? {
        var request = Self.request(try Self.vectors()["kms-list-keys"]!)
        change(&request)
        do {
            _ = try SigV4Verifier(service: "kms").verify(request, now: now, lookup: lookup)
            return nil
        } catch {
            return error
        }
    }

    @Test func rejections() throws {
        #expect(try rejection({ _ in }) == nil)
        // A wrong secret.
        let wrongSecret = try rejection({ _ in }, lookup: { _ in SigV4Credential(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wrong") })
        #expect(wrongSecret?.code.rawValue == "InvalidSignatureException")
        // A tampered body.
        #expect(try rejection({ $0.body = Array(#"{"Limit": 1}"#.utf8) })?.code.rawValue == "InvalidSignatureException")
        // A tampered signed header.
        let tamperedHeader = try rejection { r in
            r.headers = r.headers.map { $0.0 == "X-Amz-Target" ? ($0.0, "TrentService.CreateKey") : $0 }
        }
        #expect(tamperedHeader?.code.rawValue == "InvalidSignatureException")
        // A signed header missing from the request.
        let missing = try rejection { r in r.headers.removeAll { $0.0 == "X-Amz-Target" } }
        #expect(missing?.code.rawValue == "InvalidSignatureException")
        #expect(missing?.message.contains("x-amz-target") == true)
        // An expired date, and one too far ahead.
        let expired = try rejection({ _ in }, now: Self.time.addingTimeInterval(16 * 60))
        #expect(expired?.code.rawValue == "InvalidSignatureException")
        #expect(expired?.message == "Signature expired: 20150830T123600Z is now earlier than 20150830T123700Z (20150830T125200Z - 15 min.)")
        #expect(try rejection({ _ in }, now: Self.time.addingTimeInterval(14 * 60)) == nil)
        #expect(try rejection({ _ in }, now: Self.time.addingTimeInterval(-16 * 60))?.code.rawValue == "InvalidSignatureException")
        // An unknown access key.
        #expect(try rejection({ _ in }, lookup: { _ in nil })?.code.rawValue == "UnrecognizedClientException")
        // A token the credential does not have.
        #expect(try rejection({ $0.headers.append(("X-Amz-Security-Token", "stolen")) })?.code.rawValue == "UnrecognizedClientException")
        // No Authorization at all; a malformed one; host not signed.
        #expect(try rejection({ r in r.headers.removeAll { $0.0 == "Authorization" } })?.code.rawValue == "MissingAuthenticationTokenException")
        #expect(try rejection({ r in r.headers = r.headers.map { $0.0 == "Authorization" ? ($0.0, "Bearer x") : $0 } })?.code.rawValue == "IncompleteSignatureException")
        let hostUnsigned = try rejection { r in
            r.headers = r.headers.map { $0.0 == "Authorization" ? ($0.0, $0.1.replacingOccurrences(of: "content-type;host;", with: "content-type;")) : $0 }
        }
        #expect(hostUnsigned?.code.rawValue == "IncompleteSignatureException")
        // A required header (the operation's X-Amz-Target) present but outside the signature.
        var request = Self.request(try Self.vectors()["kms-list-keys"]!)
        request.headers = request.headers.map {
            $0.0 == "Authorization" ? ($0.0, $0.1.replacingOccurrences(of: ";x-amz-target", with: "")) : $0
        }
        #expect(request.header("authorization")?.contains("x-amz-target") == false)
        let verifier = SigV4Verifier(service: "kms", requiredSignedHeaders: ["X-Amz-Target"])
        #expect(throws: SigV4Error.self) { try verifier.verify(request, now: Self.time) { _ in Self.credential } }
        do { _ = try verifier.verify(request, now: Self.time) { _ in Self.credential } } catch {
            #expect(error.code.rawValue == "IncompleteSignatureException" && error.message.contains("x-amz-target"))
        }
        // Scoped to another service.
        let otherService = try rejection { r in
            r.headers = r.headers.map { $0.0 == "Authorization" ? ($0.0, $0.1.replacingOccurrences(of: "/kms/", with: "/s3/")) : $0 }
        }
        #expect(otherService?.code.rawValue == "IncompleteSignatureException")
    }

    @Test func sessionTokenRequiredWhenTheCredentialHasOne() throws {
        let c = try Self.vectors()["kms-with-session-token"]!
        var request = Self.request(c)
        let withToken = SigV4Credential(accessKeyID: "AKIDEXAMPLE", secretAccessKey: Self.credential.secretAccessKey, sessionToken: "session-token-example")
        #expect((try? SigV4Verifier(service: "kms").verify(request, now: Self.time) { _ in withToken }) != nil)
        request.headers.removeAll { $0.0 == "X-Amz-Security-Token" }
        #expect(throws: SigV4Error.self) { try SigV4Verifier(service: "kms").verify(request, now: Self.time) { _ in withToken } }
    }

    @Test func httpDateHeaderWorksInPlaceOfXAmzDate() {
        #expect(AmzDate.fromHTTPDate("Sun, 30 Aug 2015 12:36:00 GMT") == "20150830T123600Z")
        #expect(AmzDate.fromHTTPDate("not a date") == nil)
        #expect(AmzDate.format(Self.time) == "20150830T123600Z")
    }

    /// The X-Amz-Date parser computes the epoch itself: it agrees with timegm(3) across leap
    /// years, century rules and month ends, and round-trips through the formatter.
    @Test func amzDateAgreesWithTimegm() {
        for (year, month, day) in [(1970, 1, 1), (2000, 2, 29), (2024, 2, 29), (2100, 3, 1), (2026, 12, 31), (2015, 8, 30), (1999, 12, 31)] {
            for (hour, minute, second) in [(0, 0, 0), (23, 59, 59), (12, 36, 0)] {
                let text = String(format: "%04d%02d%02dT%02d%02d%02dZ", year, month, day, hour, minute, second)
                var parts = tm()
                (parts.tm_year, parts.tm_mon, parts.tm_mday) = (Int32(year - 1900), Int32(month - 1), Int32(day))
                (parts.tm_hour, parts.tm_min, parts.tm_sec) = (Int32(hour), Int32(minute), Int32(second))
                #expect(AmzDate.parse(text) == Date(timeIntervalSince1970: TimeInterval(timegm(&parts))), "\(text)")
                #expect(AmzDate.parse(text).map(AmzDate.format) == text)
            }
        }
        #expect(AmzDate.parse("20261301T000000Z") == nil)
    }
}
