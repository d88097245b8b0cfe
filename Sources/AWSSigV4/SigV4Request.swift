/// The parts of an HTTP request that Signature Version 4 covers.
public struct SigV4Request: Sendable {
    public var method: String
    /// The path, decoded (`/` for AWS JSON protocols).
    public var path: String
    /// Query parameters as received (decoded), in any order.
    public var query: [(String, String)]
    /// Header fields as received; names in any case, a name may repeat.
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(method: String, path: String = "/", query: [(String, String)] = [], headers: [(String, String)], body: [UInt8]) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// Header names are ASCII: compare bytes, folding A–Z, without building lower-cased copies.
    static func equalIgnoringASCIICase(_ a: String, _ b: String) -> Bool {
        var a = a, b = b  // withUTF8 needs a var; native strings are contiguous already, no copy
        return a.withUTF8 { x in
            b.withUTF8 { y in
                guard x.count == y.count else { return false }
                for index in x.indices where x[index] != y[index] {
                    let folded = x[index] | 0x20
                    guard folded == y[index] | 0x20, folded >= UInt8(ascii: "a"), folded <= UInt8(ascii: "z") else { return false }
                }
                return true
            }
        }
    }

    /// The first value of header `name`, found without building a list (several per request).
    public func header(_ name: String) -> String? { headers.first { Self.equalIgnoringASCIICase($0.0, name) }?.1 }
}

/// An access key as the verifier needs it.
public struct SigV4Credential: Sendable {
    public var accessKeyID: String
    public var secretAccessKey: String
    /// Required on requests signed with this credential when set (temporary credentials).
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }
}
