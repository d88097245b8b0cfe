import KMSFSCrypto

/// The Signature Version 4 computation, shared by the signer (clients) and the verifier (kmsd).
///
/// ```
/// canonical request = method \n canonical URI \n canonical query \n canonical headers \n
///                     signed headers \n hex(SHA-256(body))
/// string to sign    = "AWS4-HMAC-SHA256" \n amz-date \n scope \n hex(SHA-256(canonical request))
/// scope             = yyyymmdd / region / service / "aws4_request"
/// signing key       = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, yyyymmdd), region), service), "aws4_request")
/// signature         = hex(HMAC(signing key, string to sign))
/// ```
public enum SigV4 {
    public static let algorithm = "AWS4-HMAC-SHA256"

    /// The canonical request for `request`, covering `signedHeaders` (lower-case, sorted), as the
    /// bytes that are hashed: written into one buffer, because kmsd verifies a signature on every
    /// request and the string-by-string form cost a tenth of its time.
    public static func canonicalRequestBytes(_ request: SigV4Request, signedHeaders: [String], payloadHash: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(512)
        let newline = UInt8(ascii: "\n")
        out += request.method.utf8
        out.append(newline)
        out += uriEncode(request.path.isEmpty ? "/" : request.path, encodeSlash: false).utf8
        out.append(newline)
        if !request.query.isEmpty {
            let encoded: [(name: String, value: String)] = request.query.map {
                (uriEncode($0.0, encodeSlash: true), uriEncode($0.1, encodeSlash: true))
            }
            let sorted = encoded.sorted { (a, b) -> Bool in a.name == b.name ? a.value < b.value : a.name < b.name }
            for (index, pair) in sorted.enumerated() {
                if index > 0 { out.append(UInt8(ascii: "&")) }
                out += pair.name.utf8
                out.append(UInt8(ascii: "="))
                out += pair.value.utf8
            }
        }
        out.append(newline)
        for name in signedHeaders {
            out += name.utf8
            out.append(UInt8(ascii: ":"))
            var first = true
            for (header, value) in request.headers where SigV4Request.equalIgnoringASCIICase(header, name) {
                if !first { out.append(UInt8(ascii: ",")) }
                first = false
                out += trimmed(value).utf8
            }
            out.append(newline)
        }
        out.append(newline)
        for (index, name) in signedHeaders.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ";")) }
            out += name.utf8
        }
        out.append(newline)
        out += payloadHash.utf8
        return out
    }

    static func stringToSignBytes(amzDate: String, scope: String, canonicalRequest: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out += algorithm.utf8
        out.append(UInt8(ascii: "\n"))
        out += amzDate.utf8
        out.append(UInt8(ascii: "\n"))
        out += scope.utf8
        out.append(UInt8(ascii: "\n"))
        out += hex(SHA256.hash(canonicalRequest)).utf8
        return out
    }

    public static func signingKey(secret: String, date: String, region: String, service: String) -> [UInt8] {
        var key = HMAC.sha256(key: Array(("AWS4" + secret).utf8), message: Array(date.utf8))
        for part in [region, service, "aws4_request"] {
            key = HMAC.sha256(key: key, message: Array(part.utf8))
        }
        return key
    }

    /// The signature, in the hex form the Authorization header carries (signer and verifier alike).
    static func signature(signingKey: [UInt8], stringToSign: [UInt8]) -> String {
        hex(HMAC.sha256(key: signingKey, message: stringToSign))
    }

    public static func payloadHash(_ body: [UInt8]) -> String { hex(SHA256.hash(body)) }

    /// Header values are trimmed and runs of spaces collapsed to one.
    static func trimmed(_ value: String) -> String {
        // Nearly every value is already trimmed: check on bytes before building a new string.
        let bytes = value.utf8
        var previousSpace = true
        var clean = true
        for byte in bytes {
            let space = byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t")
            if space && previousSpace { clean = false; break }
            previousSpace = space
        }
        if clean && !previousSpace { return value }
        return value.split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
            .trimmingCharacters(in: [" ", "\t"])
    }

    /// RFC 3986 percent-encoding: unreserved characters stay, everything else is %XX (upper case).
    static func uriEncode(_ text: String, encodeSlash: Bool) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where !encodeSlash:
                out.append("/")
            default:
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    func leftPadded(to width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }

    func trimmingCharacters(in set: Set<Character>) -> String {
        var slice = Substring(self)
        while let first = slice.first, set.contains(first) { slice = slice.dropFirst() }
        while let last = slice.last, set.contains(last) { slice = slice.dropLast() }
        return String(slice)
    }
}
