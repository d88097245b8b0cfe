import AWSSigV4
import Foundation
import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSJSON

/// kmsd's side of an external key store: calls to its XKS proxy, signed with the store's
/// proxy credential, over kept-alive https connections.
final class XKSProxyClient: Sendable {
    let endpoint: Endpoint
    let uriPath: String
    private let signer: SigV4Signer
    private let pool: ConnectionPool
    /// A whole call's deadline (connect, TLS, answer).
    private let timeout: TimeInterval

    init(store: CustomKeyStoreEndpoint, secret: SecretBytes, caBundle: String?, timeout: TimeInterval) throws(CustomKeyStoreFailure) {
        guard let url = store.xksProxyURIEndpoint, let path = store.xksProxyURIPath, let accessKeyID = store.xksAccessKeyID,
              let endpoint = try? Endpoint(parsing: url) else {
            throw CustomKeyStoreFailure(.connection("XKS_PROXY_INVALID_CONFIGURATION"), "the store's proxy URI is incomplete")
        }
        self.endpoint = endpoint
        uriPath = path
        let secretText = secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) }
        signer = SigV4Signer(credential: SigV4Credential(accessKeyID: accessKeyID, secretAccessKey: secretText),
                             region: store.region, service: XKSProtocol.signingService)
        pool = ConnectionPool(endpoint: endpoint, timeout: timeout, caBundle: caBundle, maximumIdle: 8)
        self.timeout = timeout
    }

    /// A failed call, as the proxy or the network said it.
    enum CallError: Error {
        case transport(String, tls: Bool)
        case proxy(XKSProtocol.ErrorName?, status: Int)
        case malformed(String)
    }

    func call(_ route: XKSProtocol.Route, _ members: [(String, JSONValue)]) throws(CallError) -> XKSMembers {
        let body = JSONValue.object(members).serialized
        let path = uriPath + route.suffix
        var request = SigV4Request(method: "POST", path: path, headers: [
            ("Host", endpoint.hostHeader), ("Content-Type", XKSProtocol.contentType),
        ], body: body)
        request = signer.signed(request, at: Date())
        var response: HTTPConnection.Response
        do {
            response = try pool.exchange(request.httpBytes, deadline: timeout)
        } catch let failure as HTTPConnection.Failure {
            throw .transport(failure.description, tls: !failure.retryable)
        } catch {
            throw .transport("\(error)", tls: false)
        }
        defer { response.body.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        guard let parsed = XKSMembers(response.body) else {
            throw response.status == 200 ? .malformed("the proxy's answer is not a JSON object") : .proxy(nil, status: response.status)
        }
        guard response.status == 200 else {
            throw .proxy(parsed.string("errorName").flatMap(XKSProtocol.ErrorName.init(rawValue:)), status: response.status)
        }
        return parsed
    }

    static func requestMetadata(_ call: ExternalCall, withKey: Bool) -> (String, JSONValue) {
        var members: [(String, JSONValue)] = [
            ("awsPrincipalArn", .string(call.principal)), ("kmsOperation", .string(call.operation)),
            ("kmsRequestId", .string(call.requestID.isEmpty ? UUID().uuidString.lowercased() : call.requestID)),
        ]
        if withKey, let arn = call.keyARN { members.append(("kmsKeyArn", .string(arn))) }
        return ("requestMetadata", .object(members))
    }
}
