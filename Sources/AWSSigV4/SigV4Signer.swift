import Foundation

/// Signs requests with SigV4 (Authorization header form), as the AWS SDKs do.
public struct SigV4Signer: Sendable {
    public let credential: SigV4Credential
    public let region: String
    public let service: String
    /// The day's signing key, derived once (four HMACs a request otherwise).
    private let signingKeys = SigningKeyCache()

    public init(credential: SigV4Credential, region: String, service: String) {
        self.credential = credential
        self.region = region
        self.service = service
    }

    /// `request` with `X-Amz-Date`, the session token (if any) and `Authorization` added. Every
    /// header already on the request is signed; it must carry `Host`.
    public func signed(_ request: SigV4Request, at date: Date) -> SigV4Request {
        var request = request
        let amzDate = AmzDate.format(date)
        request.headers.removeAll { ["authorization", "x-amz-date", "x-amz-security-token"].contains($0.0.lowercased()) }
        request.headers.append(("X-Amz-Date", amzDate))
        if let token = credential.sessionToken { request.headers.append(("X-Amz-Security-Token", token)) }
        let names = Array(Set(request.headers.map { $0.0.lowercased() })).sorted()
        let day = String(amzDate.prefix(8))
        let scope = "\(day)/\(region)/\(service)/aws4_request"
        let canonical = SigV4.canonicalRequestBytes(request, signedHeaders: names, payloadHash: SigV4.payloadHash(request.body))
        let key = signingKeys.key(secret: credential.secretAccessKey, date: day, region: region, service: service)
        let signature = SigV4.signature(signingKey: key, stringToSign: SigV4.stringToSignBytes(amzDate: amzDate, scope: scope, canonicalRequest: canonical))
        request.headers.append(("Authorization",
                                "\(SigV4.algorithm) Credential=\(credential.accessKeyID)/\(scope), SignedHeaders=\(names.joined(separator: ";")), Signature=\(signature)"))
        return request
    }
}
