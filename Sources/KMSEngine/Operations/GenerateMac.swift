import KMSFSCrypto

public struct GenerateMacResponse: Sendable {
    public var keyId: String
    public var mac: [UInt8]
    public var macAlgorithm: MacAlgorithm
}

extension KMSEngine {
    /// GenerateMac: the HMAC of `message` (1–4096 bytes) under an HMAC key, with the algorithm
    /// of its spec.
    public func generateMac(keyID: String, message: [UInt8], macAlgorithm: MacAlgorithm, caller: Caller) throws -> GenerateMacResponse {
        try perform(.generateMac, caller) { record, state in
            let key = try usableKey(keyID, action: .generateMac, for: caller, extra: ["kms:macalgorithm": [macAlgorithm.rawValue]],
                                    in: state, record: &record)
            let secret = try Self.macKey(key, macAlgorithm, message)
            try Self.endDryRun(caller)
            return GenerateMacResponse(keyId: key.record.arn, mac: HMAC.mac(macAlgorithm.digest, key: secret, message: message),
                                       macAlgorithm: macAlgorithm)
        }
    }

    /// VerifyMac: KMSInvalidMacException unless `mac` is the HMAC of `message` (compared in
    /// constant time).
    public func verifyMac(keyID: String, message: [UInt8], mac: [UInt8], macAlgorithm: MacAlgorithm, caller: Caller) throws -> GenerateMacResponse {
        try perform(.verifyMac, caller) { record, state in
            let key = try usableKey(keyID, action: .verifyMac, for: caller, extra: ["kms:macalgorithm": [macAlgorithm.rawValue]],
                                    in: state, record: &record)
            let secret = try Self.macKey(key, macAlgorithm, message)
            try Validate.sensitiveLength(mac.count, member: "mac", 1...6144)
            try Self.endDryRun(caller)
            guard ConstantTime.equal(HMAC.mac(macAlgorithm.digest, key: secret, message: message), mac) else {
                throw KMSError(.kmsInvalidMac, "The MAC is not valid for \(key.record.arn) with \(macAlgorithm.rawValue)")
            }
            return GenerateMacResponse(keyId: key.record.arn, mac: mac, macAlgorithm: macAlgorithm)
        }
    }

    /// The HMAC key of `key` after AWS's checks: GENERATE_VERIFY_MAC, the algorithm of its spec.
    static func macKey(_ key: LiveKey, _ algorithm: MacAlgorithm, _ message: [UInt8]) throws(KMSError) -> SecretBytes {
        try requireUsage(.generateVerifyMAC, key.record, for: "GenerateMac and VerifyMac")
        let algorithms = key.record.spec.macAlgorithms(key.record.usage)
        guard algorithms.contains(algorithm) else {
            throw KMSError(.invalidKeyUsage, "\(key.record.arn) does not support the \(algorithm.rawValue) MAC algorithm "
                           + "(it supports \(algorithms.map(\.rawValue).joined(separator: ", ")))")
        }
        try Validate.sensitiveLength(message.count, member: "message", 1...4096)
        guard case let .hmac(secret, _) = try currentMaterial(key) else {
            throw KMSError(.invalidKeyUsage, "\(key.record.arn) is not an HMAC key")
        }
        return secret
    }
}
