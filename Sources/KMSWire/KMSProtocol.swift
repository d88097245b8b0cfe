import Foundation
import KMSEngine
import KMSJSON
import KMSVocabulary

/// The AWS KMS JSON 1.1 protocol over an engine: `X-Amz-Target: TrentService.<Operation>` and a
/// JSON body in, a status and a JSON body out. Transport-free, so that the server and the tests
/// drive the same code.
public struct KMSProtocol: Sendable {
    public static let targetPrefix = KMSJSONProtocol.targetPrefix
    public static let contentType = KMSJSONProtocol.contentType

    public struct Response: Sendable, Equatable {
        public var status: Int
        public var body: [UInt8]
        /// The AWS error name of a refusal (for metrics), nil for a success.
        public var errorType: String? = nil
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
                throw WireError(type: .unknownOperation, message: "The X-Amz-Target header must name TrentService.<Operation>")
            }
            let name = String(target.dropFirst(Self.targetPrefix.count))
            guard let operation = Self.operations[name] else {
                throw WireError(type: .unknownOperation, message: "Unknown operation \(name)")
            }
            var members = try Members(operation: name, body: body)
            try engine.admit(operation.operation, caller: caller, keyReference: members.peekString("KeyId") ?? members.peekString("DestinationKeyId"),
                             ciphertextBase64: members.peekString("CiphertextBlob"))
            let result = try operation.handler(&members, caller, engine)
            return Response(status: 200, body: result.serialized)
        } catch let error as WireError {
            return Self.errorResponse(error)
        } catch let error as KMSError {
            return Self.errorResponse(WireError(error))
        } catch {
            return Self.errorResponse(WireError(type: .internalError, message: "internal error", status: 500))
        }
    }

    public static func errorResponse(_ error: WireError) -> Response {
        Response(status: error.status, body: JSONValue.object([("__type", .string(error.type.rawValue)), ("message", .string(error.message))]).serialized,
                 errorType: error.type.rawValue)
    }

    /// One operation as the protocol serves it: what the engine declares of it (name, actions,
    /// whether it writes) and its handler (codec and engine call).
    struct OperationSpec: Sendable {
        let operation: KMSOperation
        let handler: Operation
        var name: String { operation.rawValue }
        var placement: Placement { operation.writes ? .writes : operation.slow ? .slow : .eventLoop }
    }

    /// Each operation's handler: a switch, so that an operation the engine declares and the
    /// wire does not serve is a compile error.
    static func handler(_ operation: KMSOperation) -> Operation {
        switch operation {
        case .createKey: return createKey
        case .describeKey: return describeKey
        case .listKeys: return listKeys
        case .updateKeyDescription: return updateKeyDescription
        case .enableKey: return enableKey
        case .disableKey: return disableKey
        case .scheduleKeyDeletion: return scheduleKeyDeletion
        case .cancelKeyDeletion: return cancelKeyDeletion
        case .encrypt: return encrypt
        case .decrypt: return decrypt
        case .reEncrypt: return reEncrypt
        case .generateDataKey: return generateDataKey
        case .generateDataKeyWithoutPlaintext: return generateDataKeyWithoutPlaintext
        case .generateRandom: return generateRandom
        case .createAlias: return createAlias
        case .updateAlias: return updateAlias
        case .deleteAlias: return deleteAlias
        case .listAliases: return listAliases
        case .tagResource: return tagResource
        case .untagResource: return untagResource
        case .listResourceTags: return listResourceTags
        case .enableKeyRotation: return enableKeyRotation
        case .disableKeyRotation: return disableKeyRotation
        case .getKeyRotationStatus: return getKeyRotationStatus
        case .rotateKeyOnDemand: return rotateKeyOnDemand
        case .listKeyRotations: return listKeyRotations
        case .getKeyPolicy: return getKeyPolicy
        case .putKeyPolicy: return putKeyPolicy
        case .listKeyPolicies: return listKeyPolicies
        case .createGrant: return createGrant
        case .listGrants: return listGrants
        case .listRetirableGrants: return listRetirableGrants
        case .retireGrant: return retireGrant
        case .revokeGrant: return revokeGrant
        case .sign: return sign
        case .verify: return verify
        case .getPublicKey: return getPublicKey
        case .generateMac: return generateMac
        case .verifyMac: return verifyMac
        case .generateDataKeyPair: return generateDataKeyPair
        case .generateDataKeyPairWithoutPlaintext: return generateDataKeyPairWithoutPlaintext
        case .deriveSharedSecret: return deriveSharedSecret
        case .getParametersForImport: return getParametersForImport
        case .importKeyMaterial: return importKeyMaterial
        case .deleteImportedKeyMaterial: return deleteImportedKeyMaterial
        case .getKeyLastUsage: return getKeyLastUsage
        case .createCustomKeyStore: return createCustomKeyStore
        case .describeCustomKeyStores: return describeCustomKeyStores
        case .connectCustomKeyStore, .disconnectCustomKeyStore, .updateCustomKeyStore, .deleteCustomKeyStore:
            return customKeyStoreChange(operation)
        case .replicateKey: return replicateKey
        case .updatePrimaryRegion: return updatePrimaryRegion
        }
    }

    /// The registry: every operation served, by name.
    static let operations: [String: OperationSpec] = Dictionary(uniqueKeysWithValues: KMSOperation.allCases.map {
        ($0.rawValue, OperationSpec(operation: $0, handler: handler($0)))
    })

    /// Where the server runs `name`: on the event loop (memory only), on the pool of writes (it
    /// waits for the store's fsync), on the pool of slow work (key generation), or on the pool of
    /// calls that wait on a custom key store (a token, a proxy).
    public enum Placement: Sendable { case eventLoop, writes, slow, external }

    /// A cryptographic call on a key in a custom key store waits for the store: it leaves the
    /// event loop for a pool of its own, so that no other key's calls queue behind a slow proxy.
    /// Which key is read from the request (KeyId, SourceKeyId, DestinationKeyId, or the blob's
    /// key) only while some store is connected; nothing is authorized here — this only places.
    public static func placement(_ name: String, body: [UInt8], caller: Caller, engine: KMSEngine) -> Placement {
        guard let spec = operations[name] else { return .eventLoop }
        let placement = spec.placement
        guard placement == .eventLoop, spec.operation.isCryptographic, engine.usesCustomKeyStores,
              case let .object(members)? = try? JSONParser.parse(body) else { return placement }
        for (member, value) in members {
            guard case let .string(text) = value else { continue }
            switch member {
            case "KeyId", "SourceKeyId", "DestinationKeyId":
                if engine.isInCustomKeyStore(keyReference: text, caller: caller) { return .external }
            case "CiphertextBlob":
                if let bytes = Data(base64Encoded: text), engine.isInCustomKeyStore(blob: Array(bytes), caller: caller) { return .external }
            default: continue
            }
        }
        return placement
    }
}
