import Foundation
import KMSJSON

/// The AWS KMS External Key Store Proxy API v1 (aws/aws-kms-xksproxy-api-spec), as both ends
/// here speak it: kmsd's XKS client and its proxy mode. POST with JSON bodies, binary members in
/// standard base64, SigV4 with service `kms-xks-proxy` signing `host` and `x-amz-date`.
public enum XKSProtocol {
    public static let signingService = "kms-xks-proxy"
    public static let contentType = "application/json"

    /// The operations, by the path under the store's `XksProxyUriPath` (which ends in /kms/xks/v1).
    public enum Route: Equatable, Sendable {
        case health
        case metadata(keyID: String)
        case encrypt(keyID: String)
        case decrypt(keyID: String)

        public var suffix: String {
            switch self {
            case .health: return "/health"
            case let .metadata(id): return "/keys/\(id)/metadata"
            case let .encrypt(id): return "/keys/\(id)/encrypt"
            case let .decrypt(id): return "/keys/\(id)/decrypt"
            }
        }

        /// The route of `path` under `prefix`, if any.
        public init?(path: String, prefix: String) {
            guard path.hasPrefix(prefix) else { return nil }
            let rest = path.dropFirst(prefix.count)
            if rest == "/health" { self = .health; return }
            let parts = rest.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 4, parts[0].isEmpty, parts[1] == "keys", XKSProtocol.isKeyID(parts[2]) else { return nil }
            let id = String(parts[2])
            switch parts[3] {
            case "metadata": self = .metadata(keyID: id)
            case "encrypt": self = .encrypt(keyID: id)
            case "decrypt": self = .decrypt(keyID: id)
            default: return nil
            }
        }
    }

    /// An external key ID: 1–128 of `[A-Za-z0-9-._]`.
    public static func isKeyID<S: StringProtocol>(_ id: S) -> Bool {
        (1...128).contains(id.count) && id.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }
    }

    /// The spec's error names and their HTTP statuses.
    public enum ErrorName: String, Sendable, CaseIterable {
        case validation = "ValidationException", invalidState = "InvalidStateException"
        case invalidCiphertext = "InvalidCiphertextException", invalidKeyUsage = "InvalidKeyUsageException"
        case authenticationFailed = "AuthenticationFailedException", accessDenied = "AccessDeniedException"
        case keyNotFound = "KeyNotFoundException", invalidURIPath = "InvalidUriPathException"
        case throttling = "ThrottlingException", unsupportedOperation = "UnsupportedOperationException"
        case dependencyTimeout = "DependencyTimeoutException", internalError = "InternalException"

        public var status: Int {
            switch self {
            case .validation, .invalidState, .invalidCiphertext, .invalidKeyUsage: return 400
            case .authenticationFailed: return 401
            case .accessDenied: return 403
            case .keyNotFound, .invalidURIPath: return 404
            case .throttling: return 429
            case .unsupportedOperation: return 501
            case .dependencyTimeout: return 503
            case .internalError: return 500
            }
        }
    }

    public static func errorBody(_ name: ErrorName, _ message: String) -> [UInt8] {
        JSONValue.object([("errorName", .string(name.rawValue)), ("errorMessage", .string(String(message.prefix(500))))]).serialized
    }

    /// The largest plaintext or ciphertext the proxy must take (4300 bytes), and AAD (8192).
    public static let maximumData = 4300
    public static let maximumAAD = 8192
}

/// The members of a JSON object, read by name.
public struct XKSMembers: Sendable {
    public let pairs: [(String, JSONValue)]

    public init?(_ bytes: [UInt8]) {
        guard case let .object(pairs)? = try? JSONParser.parse(bytes) else { return nil }
        self.pairs = pairs
    }

    public init(pairs: [(String, JSONValue)]) { self.pairs = pairs }

    public subscript(name: String) -> JSONValue? { pairs.first { $0.0 == name }?.1 }

    public func string(_ name: String) -> String? {
        if case let .string(text)? = self[name] { return text }
        return nil
    }

    /// A base64 member; nil if absent or not base64.
    public func blob(_ name: String) -> [UInt8]? { string(name).flatMap { Data(base64Encoded: $0) }.map(Array.init) }

    public func object(_ name: String) -> XKSMembers? {
        if case let .object(pairs)? = self[name] { return XKSMembers(pairs: pairs) }
        return nil
    }

    public func strings(_ name: String) -> [String]? {
        guard case let .array(items)? = self[name] else { return nil }
        var list: [String] = []
        for case let .string(text) in items { list.append(text) }
        return list.count == items.count ? list : nil
    }
}
