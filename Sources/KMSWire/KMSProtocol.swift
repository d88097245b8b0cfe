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
            let result = try operation.handler(&members, caller, engine)
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

    /// One operation as the protocol serves it: its name, whether it writes the store (and so
    /// runs on the server's blocking pool, off the event loop), and its handler (codec and engine
    /// call). The engine declares the typed actions each one is authorized as.
    struct OperationSpec: Sendable {
        let name: String
        let writes: Bool
        let handler: Operation
    }

    /// The registry: every operation served, declared once.
    static let operations: [String: OperationSpec] = Dictionary(uniqueKeysWithValues: [
        OperationSpec(name: "CreateKey", writes: true, handler: createKey),
        OperationSpec(name: "DescribeKey", writes: false, handler: describeKey),
        OperationSpec(name: "ListKeys", writes: false, handler: listKeys),
        OperationSpec(name: "UpdateKeyDescription", writes: true, handler: updateKeyDescription),
        OperationSpec(name: "EnableKey", writes: true, handler: enableKey),
        OperationSpec(name: "DisableKey", writes: true, handler: disableKey),
        OperationSpec(name: "ScheduleKeyDeletion", writes: true, handler: scheduleKeyDeletion),
        OperationSpec(name: "CancelKeyDeletion", writes: true, handler: cancelKeyDeletion),
        OperationSpec(name: "Encrypt", writes: false, handler: encrypt),
        OperationSpec(name: "Decrypt", writes: false, handler: decrypt),
        OperationSpec(name: "ReEncrypt", writes: false, handler: reEncrypt),
        OperationSpec(name: "GenerateDataKey", writes: false, handler: generateDataKey),
        OperationSpec(name: "GenerateDataKeyWithoutPlaintext", writes: false, handler: generateDataKeyWithoutPlaintext),
        OperationSpec(name: "GenerateRandom", writes: false, handler: generateRandom),
        OperationSpec(name: "CreateAlias", writes: true, handler: createAlias),
        OperationSpec(name: "UpdateAlias", writes: true, handler: updateAlias),
        OperationSpec(name: "DeleteAlias", writes: true, handler: deleteAlias),
        OperationSpec(name: "ListAliases", writes: false, handler: listAliases),
        OperationSpec(name: "TagResource", writes: true, handler: tagResource),
        OperationSpec(name: "UntagResource", writes: true, handler: untagResource),
        OperationSpec(name: "ListResourceTags", writes: false, handler: listResourceTags),
        OperationSpec(name: "EnableKeyRotation", writes: true, handler: enableKeyRotation),
        OperationSpec(name: "DisableKeyRotation", writes: true, handler: disableKeyRotation),
        OperationSpec(name: "GetKeyRotationStatus", writes: false, handler: getKeyRotationStatus),
        OperationSpec(name: "RotateKeyOnDemand", writes: true, handler: rotateKeyOnDemand),
        OperationSpec(name: "ListKeyRotations", writes: false, handler: listKeyRotations),
        OperationSpec(name: "GetKeyPolicy", writes: false, handler: getKeyPolicy),
        OperationSpec(name: "PutKeyPolicy", writes: true, handler: putKeyPolicy),
        OperationSpec(name: "ListKeyPolicies", writes: false, handler: listKeyPolicies),
        OperationSpec(name: "CreateGrant", writes: true, handler: createGrant),
        OperationSpec(name: "ListGrants", writes: false, handler: listGrants),
        OperationSpec(name: "ListRetirableGrants", writes: false, handler: listRetirableGrants),
        OperationSpec(name: "RetireGrant", writes: true, handler: retireGrant),
        OperationSpec(name: "RevokeGrant", writes: true, handler: revokeGrant),
    ].map { ($0.name, $0) })

    /// Whether `name` writes the store (the server runs it off the event loop).
    public static func writes(_ name: String) -> Bool { operations[name]?.writes ?? false }
}
