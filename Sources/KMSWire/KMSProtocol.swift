import KMSEngine
import KMSJSON

/// The AWS KMS JSON 1.1 protocol over an engine: `X-Amz-Target: TrentService.<Operation>` and a
/// JSON body in, a status and a JSON body out. Transport-free, so that the server and the tests
/// drive the same code.
public struct KMSProtocol: Sendable {
    public static let targetPrefix = "TrentService."
    public static let contentType = "application/x-amz-json-1.1"

    public struct Response: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
    }

    /// One operation: reads its members, calls the engine, returns the response members.
    typealias Operation = @Sendable (inout Members, Caller, KMSEngine) throws -> JSONValue

    public let engine: KMSEngine

    public init(engine: KMSEngine) { self.engine = engine }

    /// The operations served, by name.
    public static var operationNames: [String] { operations.keys.sorted() }

    /// Handles one request. Never throws: every failure becomes an AWS-shaped error response.
    public func handle(target: String?, body: [UInt8], caller: Caller) -> Response {
        do {
            guard let target, target.hasPrefix(Self.targetPrefix) else {
                throw WireError(type: "UnknownOperationException", message: "The X-Amz-Target header must name TrentService.<Operation>")
            }
            let name = String(target.dropFirst(Self.targetPrefix.count))
            guard let operation = Self.operations[name] else {
                throw WireError(type: "UnknownOperationException", message: "Unknown operation \(name)")
            }
            var members = try Members(operation: name, body: body)
            let result = try operation(&members, caller, engine)
            return Response(status: 200, body: result.serialized)
        } catch let error as WireError {
            return Self.errorResponse(error)
        } catch let error as KMSError {
            return Self.errorResponse(WireError(error))
        } catch {
            return Self.errorResponse(WireError(type: "KMSInternalException", message: "internal error", status: 500))
        }
    }

    public static func errorResponse(_ error: WireError) -> Response {
        Response(status: error.status, body: JSONValue.object([("__type", .string(error.type)), ("message", .string(error.message))]).serialized)
    }

    static let operations: [String: Operation] = [
        "CreateKey": createKey, "DescribeKey": describeKey, "ListKeys": listKeys,
        "UpdateKeyDescription": updateKeyDescription, "EnableKey": enableKey, "DisableKey": disableKey,
        "ScheduleKeyDeletion": scheduleKeyDeletion, "CancelKeyDeletion": cancelKeyDeletion,
        "Encrypt": encrypt, "Decrypt": decrypt, "ReEncrypt": reEncrypt,
        "GenerateDataKey": generateDataKey, "GenerateDataKeyWithoutPlaintext": generateDataKeyWithoutPlaintext,
        "GenerateRandom": generateRandom,
        "CreateAlias": createAlias, "UpdateAlias": updateAlias, "DeleteAlias": deleteAlias, "ListAliases": listAliases,
        "TagResource": tagResource, "UntagResource": untagResource, "ListResourceTags": listResourceTags,
        "EnableKeyRotation": enableKeyRotation, "DisableKeyRotation": disableKeyRotation,
        "GetKeyRotationStatus": getKeyRotationStatus, "RotateKeyOnDemand": rotateKeyOnDemand,
        "ListKeyRotations": listKeyRotations, "GetKeyPolicy": getKeyPolicy,
    ]
}
