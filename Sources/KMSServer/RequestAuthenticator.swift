import AWSSigV4
import Foundation
import KMSEngine
import KMSVocabulary
import KMSWire

/// Turns a signed HTTP request into a ``Caller``: verifies SigV4 against the engine's access keys;
/// the account and principal come from the access key, the region from the credential scope.
struct RequestAuthenticator: Sendable {
    let engine: KMSEngine
    /// One verifier per service a signature may be scoped to: `kms` (the JSON protocol), `iam`
    /// and `sts` (the query protocol).
    let kms: SigV4Verifier, iam: SigV4Verifier, sts: SigV4Verifier
    let onUnknownAccessKey: (@Sendable (String) -> Void)?
    /// Lower-cased host names requests must be signed for; empty takes any.
    let hostNames: Set<String>

    init(engine: KMSEngine, allowedSkew: TimeInterval, hostNames: [String] = [], onUnknownAccessKey: (@Sendable (String) -> Void)? = nil) {
        self.engine = engine
        self.hostNames = Set(hostNames.map { $0.lowercased() })
        self.onUnknownAccessKey = onUnknownAccessKey
        // X-Amz-Target names the operation: a signature that does not cover it proves nothing
        // about which operation was asked for (every AWS SDK signs it).
        kms = SigV4Verifier(service: "kms", allowedSkew: allowedSkew,
                            requiredSignedHeaders: ["x-amz-target", KMSJSONProtocol.viaServiceHeader])
        iam = SigV4Verifier(service: "iam", allowedSkew: allowedSkew)
        sts = SigV4Verifier(service: "sts", allowedSkew: allowedSkew)
    }

    /// The verified caller of a request signed for `service`, with what its connection says
    /// (address, TLS, endpoint policy). Temporary credentials (`ASIA…` with
    /// X-Amz-Security-Token) are verified against the session the token carries.
    func caller(for request: SigV4Request, service: String, connection: Endpoint.Connection, requestID: String) throws(WireError) -> Caller {
        let verifier: SigV4Verifier
        switch service {
        case "kms": verifier = kms
        case "iam": verifier = iam
        case "sts": verifier = sts
        default: throw WireError(type: .invalidSignature, message: "kmsd does not serve \(service)")
        }
        if !hostNames.isEmpty {
            // The Host header is signed (the verifier insists), so checking it here checks what
            // the client signed for.
            let host = Self.hostName(request.header("host") ?? "")
            guard hostNames.contains(host) else {
                throw WireError(type: .invalidSignature,
                                message: "The request was signed for host '\(host.prefix(255))'; this kmsd serves \(hostNames.sorted().joined(separator: ", "))",
                                status: 400)
            }
        }
        var principal = ""
        var account = ""
        var sessionFailure: KMSError?
        do {
            let token = request.header("x-amz-security-token")
            let verified = try verifier.verify(request, now: Date()) { accessKeyID in
                if let token {
                    do {
                        let session = try engine.session(token: token, accessKeyID: accessKeyID)
                        principal = session.principal
                        account = session.account
                        return SigV4Credential(accessKeyID: accessKeyID,
                                               secretAccessKey: session.secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) },
                                               sessionToken: token)
                    } catch let error as KMSError {
                        sessionFailure = error
                        return nil
                    } catch {
                        return nil
                    }
                }
                guard let (record, secret) = engine.accessKey(accessKeyID) else {
                    onUnknownAccessKey?(String(accessKeyID.prefix(128)))
                    return nil
                }
                principal = record.principal
                account = record.account
                return SigV4Credential(accessKeyID: accessKeyID,
                                       secretAccessKey: secret.withUnsafeBytes { String(decoding: $0, as: UTF8.self) })
            }
            _ = verified.accessKeyID
            var caller = Caller(account: account, region: verified.region, principal: principal, requestID: requestID,
                                sourceIP: connection.sourceIP, secureTransport: connection.secure, endpointPolicy: connection.policy)
            // Signed (the verifier insists when it is present), and one of the services kmsd knows.
            if let via = request.header(KMSJSONProtocol.viaServiceHeader), KMSJSONProtocol.managedServices.contains(via) {
                caller.viaService = via
                caller.viaServiceClaimed = true
            }
            caller.userAgent = request.header("user-agent").map { String($0.unicodeScalars.filter { $0.value >= 0x20 && $0.value < 0x7f }.prefix(256)) }
            return caller
        } catch {
            if let sessionFailure {
                throw WireError(type: sessionFailure.code, message: sessionFailure.message, status: 400)
            }
            throw WireError(type: error.code, message: error.message, status: error.code == .missingAuthenticationToken ? 403 : 400)
        }
    }

    /// The host of a Host header, without its port (`[::1]:8080` → `[::1]`), lower-cased.
    static func hostName(_ header: String) -> String {
        let text = header.trimmingCharacters(in: .whitespaces).lowercased()
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") { return String(text[...close]) }
        return String(text.split(separator: ":", maxSplits: 1).first ?? "")
    }

    /// Puts a refused request in the audit trail, with what its Authorization header claims.
    func audit(rejected request: SigV4Request, operation: String, requestID: String, error: WireError) {
        // Credential=AKID/date/region/service/aws4_request, as claimed (unverified).
        let scope = request.header("authorization")?.components(separatedBy: "Credential=").dropFirst().first?
            .split(separator: ",").first?.split(separator: "/").map(String.init) ?? []
        engine.auditRejectedRequest(operation: operation.isEmpty ? "Unknown" : operation, accessKeyID: scope.first,
                                    region: scope.count > 2 ? scope[2] : "", requestID: requestID, errorCode: error.type.rawValue)
    }
}
