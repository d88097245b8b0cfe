import Foundation
import KMSFSCrypto

/// Verifies SigV4-signed requests (the Authorization header form), as AWS services do.
public struct SigV4Verifier: Sendable {
    /// What a verified request proves: who signed it, for which region.
    public struct Verified: Sendable, Equatable {
        public var accessKeyID: String
        public var region: String

        public init(accessKeyID: String, region: String) {
            self.accessKeyID = accessKeyID
            self.region = region
        }
    }

    public let service: String
    /// How far the request's time may be from ours, either way.
    public let allowedSkew: TimeInterval
    /// Headers a request must sign besides `host`, when it carries them: what decides the
    /// operation (`x-amz-target` for the JSON protocols) must be covered, or a captured request
    /// signed over host and date alone could be replayed as another operation.
    public let requiredSignedHeaders: [String]
    private let signingKeys = SigningKeyCache()

    public init(service: String, allowedSkew: TimeInterval = 15 * 60, requiredSignedHeaders: [String] = []) {
        self.service = service
        self.allowedSkew = allowedSkew
        self.requiredSignedHeaders = requiredSignedHeaders.map { $0.lowercased() }
    }

    /// Checks `request`'s signature with the credential `lookup` returns for its access key.
    ///
    /// - Throws: ``SigV4Error``: MissingAuthenticationToken (no Authorization), IncompleteSignature
    ///   (malformed header, wrong scope or service, host not signed), UnrecognizedClient (unknown
    ///   key or unexpected token), InvalidSignature (mismatch, expired or future date).
    public func verify(_ request: SigV4Request, now: Date, lookup: (String) -> SigV4Credential?) throws(SigV4Error) -> Verified {
        guard let authorization = request.header("authorization") else { throw .missing }
        let parsed = try Self.parse(authorization)
        let scope = parsed.credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard scope.count == 5, scope[4] == "aws4_request" else {
            throw .incomplete("Credential should be scoped to a valid region and service, like 'AKID/20150830/us-east-1/\(service)/aws4_request'.")
        }
        let (accessKeyID, scopeDate, region, scopeService) = (scope[0], scope[1], scope[2], scope[3])
        guard scopeService == service else {
            throw .incomplete("Credential should be scoped to correct service: '\(service)'.")
        }
        guard parsed.signedHeaders.contains("host") else {
            throw .incomplete("'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.")
        }
        for name in requiredSignedHeaders where !parsed.signedHeaders.contains(name) && request.header(name) != nil {
            throw .incomplete("'\(name)' must be a 'SignedHeader' in the AWS Authorization.")
        }
        guard let amzDate = request.header("x-amz-date") ?? request.header("date").flatMap(AmzDate.fromHTTPDate),
              let requestTime = AmzDate.parse(amzDate)
        else {
            throw .incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        }
        guard amzDate.hasPrefix(scopeDate), scopeDate.count == 8 else {
            throw .invalid("Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '\(scopeDate)' != '\(amzDate.prefix(8))', from '\(amzDate)'.")
        }
        if requestTime < now.addingTimeInterval(-allowedSkew) {
            throw .invalid("Signature expired: \(amzDate) is now earlier than \(AmzDate.format(now.addingTimeInterval(-allowedSkew))) (\(AmzDate.format(now)) - \(Int(allowedSkew / 60)) min.)")
        }
        if requestTime > now.addingTimeInterval(allowedSkew) {
            throw .invalid("Signature not yet current: \(amzDate) is still later than \(AmzDate.format(now.addingTimeInterval(allowedSkew))) (\(AmzDate.format(now)) + \(Int(allowedSkew / 60)) min.)")
        }
        guard let credential = lookup(accessKeyID) else { throw .unrecognized }
        let token = request.header("x-amz-security-token")
        guard token == credential.sessionToken || (token == nil && credential.sessionToken == nil) else { throw .unrecognized }

        // A header the signature names but the request lacks can never match: say so plainly.
        for name in parsed.signedHeaders where request.header(name) == nil {
            throw .invalid("The request signature we calculated does not match the signature you provided: signed header '\(name)' is missing.")
        }
        let canonical = SigV4.canonicalRequestBytes(request, signedHeaders: parsed.signedHeaders, payloadHash: SigV4.payloadHash(request.body))
        let stringToSign = SigV4.stringToSignBytes(amzDate: amzDate, scope: String(parsed.credential.utf8.dropFirst(accessKeyID.utf8.count + 1))!,
                                                   canonicalRequest: canonical)
        let key = signingKeys.key(secret: credential.secretAccessKey, date: scopeDate, region: region, service: service)
        let expected = SigV4.signature(signingKey: key, stringToSign: stringToSign)
        guard ConstantTime.equal(Array(expected.utf8), parsed.signature) else { throw .mismatch }
        return Verified(accessKeyID: accessKeyID, region: region)
    }

    struct Authorization {
        var credential: String
        var signedHeaders: [String]
        /// As sent (hex digits), compared in constant time with the expected one.
        var signature: [UInt8]
    }

    /// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...` on bytes, making
    /// strings only of what it keeps: it runs for every request.
    static func parse(_ header: String) throws(SigV4Error) -> Authorization {
        let bytes = Array(header.utf8)
        guard bytes.starts(with: algorithmPrefix) else {
            throw .incomplete("Authorization header requires '\(SigV4.algorithm)' as its algorithm.")
        }
        var credential: ArraySlice<UInt8>?, signed: ArraySlice<UInt8>?, signature: ArraySlice<UInt8>?
        for part in bytes[algorithmPrefix.count...].split(separator: UInt8(ascii: ",")) {
            var field = part
            while field.first == UInt8(ascii: " ") { field = field.dropFirst() }
            while field.last == UInt8(ascii: " ") { field = field.dropLast() }
            guard let equals = field.firstIndex(of: UInt8(ascii: "=")) else {
                throw .incomplete("Authorization header is malformed: '\(String(decoding: field, as: UTF8.self))'.")
            }
            let (name, value) = (field[..<equals], field[(equals + 1)...])
            if name.elementsEqual("Credential".utf8) {
                credential = value
            } else if name.elementsEqual("SignedHeaders".utf8) {
                signed = value
            } else if name.elementsEqual("Signature".utf8) {
                signature = value
            }
        }
        guard let credential, let signed, let signature else {
            throw .incomplete("Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters.")
        }
        var names: [String] = []
        for name in signed.split(separator: UInt8(ascii: ";")) {
            let lowered = name.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }
                ? String(decoding: name, as: UTF8.self).lowercased() : String(decoding: name, as: UTF8.self)
            guard names.last.map({ $0 <= lowered }) ?? true else {
                throw .incomplete("SignedHeaders must be lower-case header names sorted and separated by ';'.")
            }
            names.append(lowered)
        }
        guard !names.isEmpty else {
            throw .incomplete("SignedHeaders must be lower-case header names sorted and separated by ';'.")
        }
        return Authorization(credential: String(decoding: credential, as: UTF8.self), signedHeaders: names, signature: Array(signature))
    }

    private static let algorithmPrefix = Array((SigV4.algorithm + " ").utf8)
}
