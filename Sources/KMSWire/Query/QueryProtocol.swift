import Foundation
import KMSEngine
import KMSVocabulary

/// The AWS query protocol as kmsd serves it for IAM (users, access keys, roles, inline
/// policies) and STS (AssumeRole, GetCallerIdentity): a form body in, XML out. Transport-free,
/// like ``KMSProtocol``.
public struct QueryProtocol: Sendable {
    public struct Response: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
    }

    public static let contentType = "text/xml"

    /// One operation: reads its parameters, calls the engine, returns the children of its
    /// `<ActionResult>` element.
    typealias Operation = @Sendable (inout QueryParameters, Caller, KMSEngine) throws -> [XML]

    /// One operation, declared once: its service (which SigV4 scope signs it), whether it writes
    /// the store, and its handler.
    struct OperationSpec: Sendable {
        enum Service: String, Sendable { case iam, sts }
        let name: String
        let service: Service
        let writes: Bool
        let handler: Operation
    }

    public let engine: KMSEngine

    public init(engine: KMSEngine) { self.engine = engine }

    /// What the server needs before it authenticates: the action and its signing service
    /// (`iam` or `sts`), or nil when the body names no action kmsd serves.
    public static func route(body: [UInt8]) -> (action: String, service: String, writes: Bool)? {
        guard let parameters = try? QueryParameters(body: body), let spec = operations[parameters.action] else { return nil }
        return (spec.name, spec.service.rawValue, spec.writes)
    }

    /// Handles one authenticated request. Never throws: failures become query-protocol errors.
    public func handle(body: [UInt8], caller: Caller) -> Response {
        var service = OperationSpec.Service.iam
        do {
            var parameters = try QueryParameters(body: body)
            guard let spec = Self.operations[parameters.action] else {
                throw WireError(type: .invalidAction, message: "Could not find operation \(parameters.action.prefix(64))")
            }
            service = spec.service
            // IAM and STS calls count against the account's management quota.
            try engine.admit(.management, operationName: spec.name, caller: caller)
            let result = try spec.handler(&parameters, caller, engine)
            var out = "<\(spec.name)Response xmlns=\"\(Self.namespace(spec.service))\">"
            XML.element("\(spec.name)Result", result).write(to: &out)
            XML.element("ResponseMetadata", [.text("RequestId", caller.requestID)]).write(to: &out)
            out += "</\(spec.name)Response>"
            return Response(status: 200, body: Array(out.utf8))
        } catch let error as WireError {
            return Self.errorResponse(type: error.type, message: error.message, service: service, requestID: caller.requestID)
        } catch let error as KMSError {
            return Self.errorResponse(type: error.code, message: error.message, service: service, requestID: caller.requestID)
        } catch {
            return Self.errorResponse(type: .serviceFailure, message: "internal error", service: service, requestID: caller.requestID)
        }
    }

    static func namespace(_ service: OperationSpec.Service) -> String {
        service == .iam ? "https://iam.amazonaws.com/doc/2010-05-08/" : "https://sts.amazonaws.com/doc/2011-06-15/"
    }

    /// An error as IAM and STS send it, with their names for the engine's codes and their statuses.
    public static func errorResponse(type: AWSErrorCode, message: String, service: String = "iam", requestID: String) -> Response {
        errorResponse(type: type, message: message, service: OperationSpec.Service(rawValue: service) ?? .iam, requestID: requestID)
    }

    static func errorResponse(type: AWSErrorCode, message: String, service: OperationSpec.Service, requestID: String) -> Response {
        let code: AWSErrorCode, status: Int
        switch type {
        case .accessDenied, .queryAccessDenied: (code, status) = (.queryAccessDenied, 403)
        case .noSuchEntity: (code, status) = (.noSuchEntity, 404)
        case .entityAlreadyExists, .deleteConflict, .iamLimitExceeded: (code, status) = (type, 409)
        case .expiredToken: (code, status) = (.queryExpiredToken, 400)
        case .unrecognizedClient, .invalidClientTokenID: (code, status) = (.invalidClientTokenID, 403)
        case .validation, .iamValidation: (code, status) = (.iamValidation, 400)
        case .serviceFailure, .internalError: (code, status) = (.serviceFailure, 500)
        case .missingAuthenticationToken: (code, status) = (.queryMissingAuthenticationToken, 403)
        default: (code, status) = (type, 400)
        }
        var out = "<ErrorResponse xmlns=\"\(namespace(service))\">"
        XML.element("Error", [.text("Type", status >= 500 ? "Receiver" : "Sender"), .text("Code", code.rawValue), .text("Message", message)]).write(to: &out)
        XML.text("RequestId", requestID).write(to: &out)
        out += "</ErrorResponse>"
        return Response(status: status, body: Array(out.utf8))
    }

    /// Policy documents travel URL-encoded in IAM's XML (RFC 3986), as IAM sends them.
    static func encodedDocument(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    static let operations: [String: OperationSpec] = Dictionary(uniqueKeysWithValues: (iamOperations + stsOperations).map { ($0.name, $0) })
}
