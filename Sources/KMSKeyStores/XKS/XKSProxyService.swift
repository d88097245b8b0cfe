import AWSSigV4
import Foundation
import KMSFSCrypto
import KMSJSON

/// kmsd's XKS proxy mode, without its transport: the External Key Store Proxy API in front of a
/// PKCS#11 token, whose AES-256 keys (by label) are the external keys. A self-hosted external
/// key manager for kmsd's EXTERNAL_KEY_STORE stores — or for AWS KMS itself.
///
/// Every request is authenticated (SigV4, service `kms-xks-proxy`, `host` and `x-amz-date`
/// signed, any Region), then checked against the spec's members and limits. AES-GCM's additional
/// data is the spec's: `len16(AAD) ‖ AAD ‖ len8(ciphertextMetadata) ‖ ciphertextMetadata`, so the
/// proxy binds what KMS passes. The proxy never puts key material or plaintext in an error.
public final class XKSProxyService: Sendable {
    let token: PKCS11Token
    /// The URI path prefix, ending in /kms/xks/v1.
    public let uriPath: String
    /// Accepted credentials, access key ID → secret (two allow rotation, as the spec advises).
    private let credentials: [String: String]
    private let verifier = SigV4Verifier(service: XKSProtocol.signingService, allowedSkew: 5 * 60, requiredSignedHeaders: ["host", "x-amz-date"])

    public init(token: PKCS11Token, uriPath: String, credentials: [String: String]) {
        self.token = token
        self.uriPath = uriPath
        self.credentials = credentials
    }

    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public init(status: Int, body: [UInt8]) {
            self.status = status
            self.body = body
        }
    }

    private static func error(_ name: XKSProtocol.ErrorName, _ message: String) -> Answer {
        Answer(status: name.status, body: XKSProtocol.errorBody(name, message))
    }

    public func handle(method: String, path: String, headers: [(String, String)], body: [UInt8], now: Date = Date()) -> Answer {
        // Who asks comes first: an unauthenticated peer learns nothing, not even which paths exist.
        do {
            _ = try verifier.verify(SigV4Request(method: method, path: path, headers: headers, body: body), now: now) { id in
                credentials[id].map { SigV4Credential(accessKeyID: id, secretAccessKey: $0) }
            }
        } catch {
            return Self.error(.authenticationFailed, "the request's signature does not verify")
        }
        guard let route = XKSProtocol.Route(path: path, prefix: uriPath) else {
            return Self.error(.invalidURIPath, "no XKS operation at this path")
        }
        guard method == "POST" else { return Answer(status: 405, body: XKSProtocol.errorBody(.validation, "use POST")) }
        guard let request = XKSMembers(body), let metadata = request.object("requestMetadata"),
              metadata.string("kmsOperation") != nil, metadata.string("kmsRequestId") != nil else {
            return Self.error(.validation, "the body must be a JSON object with requestMetadata (kmsOperation, kmsRequestId)")
        }
        switch route {
        case .health:
            return Answer(status: 200, body: JSONValue.object([
                ("xksProxyFleetSize", .int(1)), ("xksProxyVendor", .string("kmsfs")), ("xksProxyModel", .string("kmsd xks-proxy")),
                ("ekmVendor", .string("PKCS#11")),
                ("ekmFleetDetails", .array([.object([("id", .string(token.label)), ("model", .string("PKCS#11 token")),
                                                     ("healthStatus", .string("ACTIVE"))])])),
            ]).serialized)
        case let .metadata(keyID):
            guard metadata.string("awsPrincipalArn") != nil else { return Self.error(.validation, "requestMetadata needs awsPrincipalArn") }
            return withKey(keyID) {
                Answer(status: 200, body: JSONValue.object([
                    ("keySpec", .string("AES_256")), ("keyUsage", .array([.string("ENCRYPT"), .string("DECRYPT")])), ("keyStatus", .string("ENABLED")),
                ]).serialized)
            }
        case let .encrypt(keyID):
            return crypt(keyID, request, metadata, encrypt: true)
        case let .decrypt(keyID):
            return crypt(keyID, request, metadata, encrypt: false)
        }
    }

    private func withKey(_ keyID: String, _ body: () throws(PKCS11Error) -> Answer) -> Answer {
        do {
            guard try token.hasKey(label: keyID) else { return Self.error(.keyNotFound, "no external key \(keyID)") }
            return try body()
        } catch {
            switch error.kind {
            case .keyNotFound: return Self.error(.keyNotFound, "no external key \(keyID)")
            case .authenticationFailed: return Self.error(.invalidCiphertext, "the ciphertext does not decrypt under \(keyID)")
            default: return Self.error(.internalError, "the key manager failed")
            }
        }
    }

    private func crypt(_ keyID: String, _ request: XKSMembers, _ metadata: XKSMembers, encrypt: Bool) -> Answer {
        guard metadata.string("awsPrincipalArn") != nil, metadata.string("kmsKeyArn") != nil else {
            return Self.error(.validation, "requestMetadata needs awsPrincipalArn and kmsKeyArn")
        }
        guard request.string("encryptionAlgorithm") == "AES_GCM" else { return Self.error(.validation, "encryptionAlgorithm must be AES_GCM") }
        // A member of the wrong type is refused, never taken as absent (AAD bound as empty).
        for member in ["additionalAuthenticatedData", "ciphertextMetadata", "plaintext", "ciphertext", "initializationVector", "authenticationTag"]
        where request[member] != nil && request[member] != .null && request.string(member) == nil {
            return Self.error(.validation, "\(member) must be a base64 string")
        }
        let aad = request.string("additionalAuthenticatedData") == nil ? [] : request.blob("additionalAuthenticatedData")
        let cipherMetadata = request.string("ciphertextMetadata") == nil ? [] : request.blob("ciphertextMetadata")
        guard let aad, aad.count <= XKSProtocol.maximumAAD, let cipherMetadata, cipherMetadata.count <= 20 else {
            return Self.error(.validation, "additionalAuthenticatedData or ciphertextMetadata is not valid base64 of an allowed size")
        }
        if request.string("ciphertextDataIntegrityValueAlgorithm") != nil {
            return Self.error(.unsupportedOperation, "ciphertextDataIntegrityValueAlgorithm is not supported by this proxy")
        }
        var bound: [UInt8] = [UInt8(aad.count >> 8), UInt8(aad.count & 0xff)] + aad
        bound += [UInt8(cipherMetadata.count)] + cipherMetadata
        if encrypt {
            guard var plaintext = request.blob("plaintext"), (1...XKSProtocol.maximumData).contains(plaintext.count) else {
                return Self.error(.validation, "plaintext must be base64 of 1 to \(XKSProtocol.maximumData) bytes")
            }
            let secret = SecretBytes(wiping: &plaintext)
            return withKey(keyID) { () throws(PKCS11Error) in
                let (iv, sealed) = try token.seal(label: keyID, plaintext: secret, additionalData: bound)
                return Answer(status: 200, body: JSONValue.object([
                    ("ciphertext", .blob(Array(sealed.dropLast(PKCS11Token.tagByteCount)))),
                    ("initializationVector", .blob(iv)), ("authenticationTag", .blob(Array(sealed.suffix(PKCS11Token.tagByteCount)))),
                ]).serialized)
            }
        }
        guard let ciphertext = request.blob("ciphertext"), (1...XKSProtocol.maximumData).contains(ciphertext.count),
              let iv = request.blob("initializationVector"), let tag = request.blob("authenticationTag"), tag.count == 16 else {
            return Self.error(.validation, "ciphertext, initializationVector and authenticationTag (16 bytes) are required")
        }
        guard iv.count == PKCS11Token.ivByteCount else {
            return Self.error(.invalidCiphertext, "this proxy's ciphertexts have 12-byte IVs")
        }
        return withKey(keyID) { () throws(PKCS11Error) in
            let plaintext = try token.open(label: keyID, iv: iv, sealed: ciphertext + tag, additionalData: bound)
            return Answer(status: 200, body: JSONValue.object([("plaintext", plaintext.withUnsafeBytes { .blob(Array($0)) })]).serialized)
        }
    }
}
