import AWSSigV4
import Foundation
import KMSVocabulary
import KMSFSCrypto
import KMSJSON
import Synchronization

/// A remote key service speaking the AWS KMS JSON 1.1 protocol: kmsd, AWS KMS, moto, LocalStack.
///
/// Requests are signed with SigV4 and sent over kept-alive HTTP/1.1 connections (TCP, TLS 1.2+
/// with the system's CAs or a given bundle, or a Unix socket). Throttling, 5xx answers and connection failures are retried with capped exponential
/// backoff and full jitter; other client errors are not retried.
///
/// Several endpoints (instances of one service on a shared store) fail over: a connection
/// failure or a 5xx answer moves every later call to the next endpoint, and the retry goes
/// there, under the same attempt and backoff rules. Throttling stays on the endpoint: the quota
/// is the account's, wherever it is counted. The client stays on an endpoint that works; there
/// is no preferred one to go back to.
public final class HTTPKMSClient: KMSClient {
    public struct Options: Sendable {
        /// Per attempt: connect, send and receive.
        public var timeout: TimeInterval = 5
        /// Attempts in all (1 = no retry).
        public var maximumAttempts = 4
        /// Attempts in all while the service answers ThrottlingException: more than for
        /// failures, since a quota recovers by itself in a second or so, and a file operation
        /// that waits is better than one that fails (about 35 s at most, with the backoff). Many:
        /// the mount's key pool draws on the same quota, and a file's call competing with its
        /// refills can be refused ten times in a row (seen once in a full run at ten).
        public var maximumThrottledAttempts = 20
        public var baseDelay: TimeInterval = 0.05
        public var maximumDelay: TimeInterval = 2
        /// Trusted CAs (PEM) for https endpoints; nil for the system's.
        public var caBundle: String?
        /// Sent as User-Agent (the service records it in its audit trail).
        public var userAgent = "kmsfs"
        public init() {}
    }

    public let configuration: AWSConfiguration
    public let options: Options
    private let endpoints: [Endpoint]
    private let signer: SigV4Signer
    /// One per endpoint, in the same order.
    private let pools: [ConnectionPool]
    /// The endpoint calls go to, until it fails.
    private let current = Atomic<Int>(0)

    /// A second client on the same service (its own connections) whose calls say they refill the key pool.
    public func forKeyPool() -> any KMSClient {
        var options = self.options
        options.userAgent = "kmsfs (key-pool)"
        return (try? HTTPKMSClient(configuration: configuration, options: options)) ?? self
    }

    public init(configuration: AWSConfiguration, options: Options = Options()) throws(KMSClientError) {
        self.configuration = configuration
        self.options = options
        self.endpoints = try Endpoint.list(parsing: configuration.endpoint)
        self.signer = SigV4Signer(credential: SigV4Credential(accessKeyID: configuration.accessKeyID,
                                                              secretAccessKey: configuration.secretAccessKey,
                                                              sessionToken: configuration.sessionToken),
                                  region: configuration.region, service: "kms")
        self.pools = endpoints.map { ConnectionPool(endpoint: $0, timeout: options.timeout, caBundle: options.caBundle) }
    }

    public func generateDataKey(keyID: String, context: EncryptionContext) throws(KMSClientError) -> DataKey {
        let r = try call("GenerateDataKey", [("KeyId", .string(keyID)), ("KeySpec", .string("AES_256")), ("EncryptionContext", .stringMap(context))])
        return DataKey(plaintext: try r.secret("Plaintext"), ciphertextBlob: try r.blob("CiphertextBlob"), keyARN: try r.string("KeyId"))
    }

    public func decrypt(ciphertextBlob: [UInt8], context: EncryptionContext, keyID: String?) throws(KMSClientError) -> SecretBytes {
        var members: [(String, JSONValue)] = [("CiphertextBlob", .blob(ciphertextBlob)), ("EncryptionContext", .stringMap(context))]
        if let keyID { members.append(("KeyId", .string(keyID))) }
        return try call("Decrypt", members).secret("Plaintext")
    }

    public func reEncrypt(ciphertextBlob: [UInt8], sourceContext: EncryptionContext, destinationKeyID: String,
                          destinationContext: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        try call("ReEncrypt", [("CiphertextBlob", .blob(ciphertextBlob)), ("SourceEncryptionContext", .stringMap(sourceContext)),
                               ("DestinationKeyId", .string(destinationKeyID)), ("DestinationEncryptionContext", .stringMap(destinationContext))])
            .blob("CiphertextBlob")
    }

    public func describeKey(keyID: String) throws(KMSClientError) -> KeyDescription {
        let metadata = try call("DescribeKey", [("KeyId", .string(keyID))]).object("KeyMetadata")
        return KeyDescription(keyARN: try metadata.string("Arn"), keyState: try metadata.string("KeyState"),
                              keyManager: (try? metadata.string("KeyManager")) ?? "CUSTOMER")
    }

    public func encrypt(keyID: String, plaintext: SecretBytes, context: EncryptionContext) throws(KMSClientError) -> [UInt8] {
        let encoded = plaintext.withUnsafeBytes { Data($0).base64EncodedString() }
        return try call("Encrypt", [("KeyId", .string(keyID)), ("Plaintext", .string(encoded)), ("EncryptionContext", .stringMap(context))])
            .blob("CiphertextBlob")
    }

    // MARK: The exchange

    /// Sends one operation, retrying what is worth retrying; returns the response members.
    package func call(_ operation: String, _ members: [(String, JSONValue)]) throws(KMSClientError) -> ResponseMembers {
        let body = JSONValue.object(members).serialized
        var attempt = 0
        while true {
            attempt += 1
            let index = current.load(ordering: .relaxed)
            let outcome = send(operation, body, to: index)
            switch outcome {
            case let .success(members):
                return members
            case let .failure(error, retryable, failover):
                if failover && endpoints.count > 1 {
                    // Only the first caller to see this endpoint fail moves everyone on.
                    _ = current.compareExchange(expected: index, desired: (index + 1) % endpoints.count, ordering: .relaxed)
                }
                let limit = error.isThrottling ? max(options.maximumAttempts, options.maximumThrottledAttempts) : options.maximumAttempts
                guard retryable, attempt < limit else {
                    if retryable {
                        throw KMSClientError(.unreachable, code: error.code,
                                             message: "\(configuration.endpoint) still failing after \(attempt) attempts: \(error.message)")
                    }
                    throw error
                }
                // Full jitter: a random delay up to the capped exponential bound.
                let bound = min(options.maximumDelay, options.baseDelay * pow(2, Double(attempt - 1)))
                Thread.sleep(forTimeInterval: Double.random(in: 0...bound))
            }
        }
    }

    enum Outcome {
        case success(ResponseMembers)
        /// `failover`: the endpoint itself failed (no connection, or a 5xx): try the next one.
        case failure(KMSClientError, retryable: Bool, failover: Bool)
    }

    private func send(_ operation: String, _ body: [UInt8], to index: Int) -> Outcome {
        let endpoint = endpoints[index], pool = pools[index]
        var request = SigV4Request(method: "POST", headers: [
            ("Host", endpoint.hostHeader), ("Content-Type", KMSJSONProtocol.contentType),
            ("X-Amz-Target", KMSJSONProtocol.targetPrefix + operation), ("User-Agent", options.userAgent),
            (KMSJSONProtocol.viaServiceHeader, "kmsfs"),
        ], body: body)
        request = signer.signed(request, at: Date())
        var response: HTTPConnection.Response
        do {
            response = try pool.exchange(request.httpBytes)
        } catch let failure as HTTPConnection.Failure {
            return .failure(KMSClientError(.unreachable, message: "\(endpoint): \(failure)"), retryable: failure.retryable, failover: true)
        } catch {
            return .failure(KMSClientError(.unreachable, message: "\(endpoint): \(error)"), retryable: true, failover: true)
        }
        // The answer may hold a data key: it goes from the body into the key heap, and the body
        // is wiped whatever happens next.
        defer { response.body.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        var secrets: [String: SecretBytes] = [:]
        if response.status == 200, let plaintext = SecretMember.take("Plaintext", from: &response.body) {
            secrets["Plaintext"] = plaintext
        }
        let parsed = try? JSONParser.parse(response.body)
        if response.status == 200, case let .object(members)? = parsed {
            return .success(ResponseMembers(members: members, secrets: secrets))
        }
        var code = "HTTP\(response.status)", message = String(decoding: response.body.prefix(200), as: UTF8.self)
        if case let .object(members)? = parsed {
            for (name, value) in members {
                if case let .string(text) = value {
                    if name == "__type" { code = text }
                    if name.lowercased() == "message" { message = text }
                }
            }
        }
        let error = KMSClientError(awsCode: code, message: message)
        return .failure(error, retryable: response.status >= 500 || response.status == 429 || error.isThrottling,
                        failover: response.status >= 500)
    }
}

/// The members of a response object, read with the types the client expects.
package struct ResponseMembers {
    let members: [(String, JSONValue)]
    /// Members taken out of the body before parsing (``SecretMember``).
    var secrets: [String: SecretBytes] = [:]

    private func member(_ name: String) throws(KMSClientError) -> JSONValue {
        guard let value = members.last(where: { $0.0 == name })?.1 else {
            throw KMSClientError(.invalidRequest, message: "the response has no \(name)")
        }
        return value
    }

    package func string(_ name: String) throws(KMSClientError) -> String {
        guard case let .string(text) = try member(name) else { throw KMSClientError(.invalidRequest, message: "\(name) is not a string") }
        return text
    }

    package func blob(_ name: String) throws(KMSClientError) -> [UInt8] {
        guard let data = Data(base64Encoded: try string(name)) else { throw KMSClientError(.invalidRequest, message: "\(name) is not base64") }
        return Array(data)
    }

    package func secret(_ name: String) throws(KMSClientError) -> SecretBytes {
        if let taken = secrets[name] { return taken }
        var bytes = try blob(name)
        return SecretBytes(wiping: &bytes)
    }

    package func object(_ name: String) throws(KMSClientError) -> ResponseMembers {
        guard case let .object(inner) = try member(name) else { throw KMSClientError(.invalidRequest, message: "\(name) is not an object") }
        return ResponseMembers(members: inner)
    }
}
