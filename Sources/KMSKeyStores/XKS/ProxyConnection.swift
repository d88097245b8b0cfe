import Foundation
import KMSEngine
import KMSFSCrypto
import KMSJSON
import Synchronization

/// An EXTERNAL_KEY_STORE store: its proxy's four operations, with the proxy's errors mapped as
/// AWS KMS maps them (the proxy's own messages never reach kmsd's caller).
final class ProxyConnection: CustomKeyStoreConnection {
    let client: XKSProxyClient
    /// Calls waiting on this proxy at most: a proxy that stops answering holds this many of
    /// kmsd's threads for a deadline each, never all of them.
    static let maximumInFlight = 3
    private let inFlight = Atomic<Int>(0)

    init(client: XKSProxyClient) { self.client = client }

    /// Runs one data-plane call within the in-flight bound.
    private func bounded<T>(_ body: () throws(CustomKeyStoreFailure) -> T) throws(CustomKeyStoreFailure) -> T {
        guard inFlight.add(1, ordering: .acquiringAndReleasing).newValue <= Self.maximumInFlight else {
            inFlight.subtract(1, ordering: .acquiringAndReleasing)
            throw CustomKeyStoreFailure(.unavailable, "too many calls are waiting on the external key store proxy")
        }
        defer { inFlight.subtract(1, ordering: .acquiringAndReleasing) }
        return try body()
    }

    /// GetHealthStatus, as ConnectCustomKeyStore calls it: a failure is AWS's ConnectionErrorCode.
    func checkHealth(_ call: ExternalCall) throws(CustomKeyStoreFailure) {
        let answer: XKSMembers
        do {
            answer = try client.call(.health, [("requestMetadata", .object([
                ("kmsRequestId", .string(call.requestID.isEmpty ? UUID().uuidString.lowercased() : call.requestID)),
                ("kmsOperation", .string(call.operation == "KmsHealthCheck" ? "KmsHealthCheck" : "ConnectCustomKeyStore")),
            ]))])
        } catch {
            let code: String
            switch error {
            case let .transport(text, tls): code = tls ? "XKS_PROXY_INVALID_TLS_CONFIGURATION" : text.contains("timed out") || text.contains("Resource temporarily") ? "XKS_PROXY_TIMED_OUT" : "XKS_PROXY_NOT_REACHABLE"
            case .proxy(.authenticationFailed?, _), .proxy(.accessDenied?, _): code = "XKS_PROXY_ACCESS_DENIED"
            case .proxy(.invalidURIPath?, _): code = "XKS_PROXY_INVALID_CONFIGURATION"
            case .proxy(.dependencyTimeout?, _), .proxy(.throttling?, _): code = "XKS_PROXY_NOT_REACHABLE"
            default: code = "XKS_PROXY_INVALID_RESPONSE"
            }
            throw CustomKeyStoreFailure(.connection(code), "the proxy's health check failed: \(error)")
        }
        guard case let .array(fleet)? = answer["ekmFleetDetails"], !fleet.isEmpty,
              fleet.contains(where: { if case let .object(pairs) = $0 { return XKSMembers(pairs: pairs).string("healthStatus") != "UNAVAILABLE" }; return false })
        else {
            throw CustomKeyStoreFailure(.connection("XKS_PROXY_INVALID_RESPONSE"), "the proxy reports no available external key manager")
        }
    }

    private func dataPlaneFailure(_ error: XKSProxyClient.CallError) -> CustomKeyStoreFailure {
        switch error {
        case .proxy(.invalidCiphertext?, _): return CustomKeyStoreFailure(.invalidCiphertext, "the proxy could not decrypt the ciphertext")
        case .proxy(.keyNotFound?, _): return CustomKeyStoreFailure(.keyNotFound, "the proxy has no such external key")
        case .proxy(.invalidState?, _), .proxy(.invalidKeyUsage?, _):
            return CustomKeyStoreFailure(.keyInvalidConfiguration, "the external key is not enabled for this use")
        case let .proxy(name, status): return CustomKeyStoreFailure(.unavailable, "the proxy answered \(name?.rawValue ?? "HTTP \(status)")")
        case let .transport(text, _): return CustomKeyStoreFailure(.unavailable, "the proxy is unreachable: \(text)")
        case let .malformed(text): return CustomKeyStoreFailure(.invalidResponse, text)
        }
    }

    func createKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure) {
        throw CustomKeyStoreFailure(.keyInvalidConfiguration, "keys of an external key store are made in the external key manager")
    }

    func checkKey(label: String, call: ExternalCall) throws(CustomKeyStoreFailure) {
        try bounded { () throws(CustomKeyStoreFailure) in try checkKeyNow(label: label, call: call) }
    }

    private func checkKeyNow(label: String, call: ExternalCall) throws(CustomKeyStoreFailure) {
        let answer: XKSMembers
        do {
            answer = try client.call(.metadata(keyID: label), [XKSProxyClient.requestMetadata(call, withKey: false)])
        } catch { throw dataPlaneFailure(error) }
        let usage = answer.strings("keyUsage") ?? []
        guard answer.string("keySpec") == "AES_256", usage.contains("ENCRYPT"), usage.contains("DECRYPT"), answer.string("keyStatus") == "ENABLED" else {
            throw CustomKeyStoreFailure(.keyInvalidConfiguration, "external key \(label) is not an enabled AES_256 key for ENCRYPT and DECRYPT")
        }
    }

    func seal(label: String, plaintext: SecretBytes, additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> (iv: [UInt8], sealed: [UInt8]) {
        try bounded { () throws(CustomKeyStoreFailure) in try sealNow(label: label, plaintext: plaintext, additionalData: additionalData, call: call) }
    }

    private func sealNow(label: String, plaintext: SecretBytes, additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> (iv: [UInt8], sealed: [UInt8]) {
        let answer: XKSMembers
        do {
            answer = try client.call(.encrypt(keyID: label), [
                XKSProxyClient.requestMetadata(call, withKey: true),
                ("plaintext", plaintext.withUnsafeBytes { .blob(Array($0)) }),
                ("encryptionAlgorithm", .string("AES_GCM")),
                ("additionalAuthenticatedData", .blob(additionalData)),
            ])
        } catch { throw dataPlaneFailure(error) }
        guard let ciphertext = answer.blob("ciphertext"), let iv = answer.blob("initializationVector"), let tag = answer.blob("authenticationTag"),
              ciphertext.count == plaintext.count, tag.count == 16, iv.count == 12 else {
            throw CustomKeyStoreFailure(.invalidResponse, "the proxy's Encrypt answer is malformed (kmsd takes 12-byte IVs)")
        }
        return (iv, ciphertext + tag)
    }

    func open(label: String, iv: [UInt8], sealed: [UInt8], additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> SecretBytes {
        try bounded { () throws(CustomKeyStoreFailure) in try openNow(label: label, iv: iv, sealed: sealed, additionalData: additionalData, call: call) }
    }

    private func openNow(label: String, iv: [UInt8], sealed: [UInt8], additionalData: [UInt8], call: ExternalCall) throws(CustomKeyStoreFailure) -> SecretBytes {
        guard sealed.count >= 16 else { throw CustomKeyStoreFailure(.invalidCiphertext, "the ciphertext is too short") }
        let answer: XKSMembers
        do {
            answer = try client.call(.decrypt(keyID: label), [
                XKSProxyClient.requestMetadata(call, withKey: true),
                ("ciphertext", .blob(Array(sealed.dropLast(16)))),
                ("encryptionAlgorithm", .string("AES_GCM")),
                ("initializationVector", .blob(iv)),
                ("authenticationTag", .blob(Array(sealed.suffix(16)))),
                ("additionalAuthenticatedData", .blob(additionalData)),
            ])
        } catch { throw dataPlaneFailure(error) }
        guard var plaintext = answer.blob("plaintext"), plaintext.count == sealed.count - 16 else {
            throw CustomKeyStoreFailure(.invalidResponse, "the proxy's Decrypt answer is malformed")
        }
        return SecretBytes(wiping: &plaintext)
    }

    func random(count: Int) throws(CustomKeyStoreFailure) -> SecretBytes {
        throw CustomKeyStoreFailure(.unavailable, "an external key store draws no random bytes")
    }

    func deleteKey(label: String) throws(CustomKeyStoreFailure) {}

    func close() {}
}
