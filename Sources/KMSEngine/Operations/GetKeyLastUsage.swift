import Foundation
import Synchronization

/// The last successful cryptographic use of a key (AWS's GetKeyLastUsage), tracked in memory
/// since the engine opened its store: TrackingStartDate says so, as AWS's does for its own
/// start of tracking. The audit trail keeps every use for good.
public struct KeyLastUsage: Sendable, Equatable {
    public var operation: String
    public var timestamp: Date
    public var requestID: String
}

public struct GetKeyLastUsageResponse: Sendable {
    public var keyId: String
    public var keyLastUsage: KeyLastUsage?
    public var trackingStartDate: Date
    public var keyCreationDate: Date
}

/// Last uses by key ARN: one short lock per successful cryptographic call.
final class LastUsageTracker: Sendable {
    let startDate: Date
    private let uses = Mutex<[String: KeyLastUsage]>([:])

    init(startDate: Date) { self.startDate = startDate }

    func record(keyARN: String, _ use: KeyLastUsage) { uses.withLock { $0[keyARN] = use } }
    func last(keyARN: String) -> KeyLastUsage? { uses.withLock { $0[keyARN] } }
}

extension KMSEngine {
    public func getKeyLastUsage(keyID: String, caller: Caller) throws -> GetKeyLastUsageResponse {
        try perform(.getKeyLastUsage, caller) { record, state in
            let key = try managedKey(keyID, action: .getKeyLastUsage, allowAlias: true, for: caller, in: state, record: &record)
            return GetKeyLastUsageResponse(keyId: key.record.arn, keyLastUsage: lastUsage.last(keyARN: key.record.arn),
                                           trackingStartDate: lastUsage.startDate, keyCreationDate: key.record.creationDate)
        }
    }

    /// Notes a successful cryptographic call's use of its key (``perform`` asks, for those only).
    func noteUse(_ record: AuditRecord) {
        guard record.errorCode == nil, let arn = record.keyARN else { return }
        lastUsage.record(keyARN: arn, KeyLastUsage(operation: record.operation, timestamp: record.time, requestID: record.requestID))
    }
}

extension KMSOperation {
    /// The operations GetKeyLastUsage counts as uses of a key.
    public var isCryptographic: Bool {
        switch self {
        case .encrypt, .decrypt, .reEncrypt, .generateDataKey, .generateDataKeyWithoutPlaintext, .generateDataKeyPair,
             .generateDataKeyPairWithoutPlaintext, .sign, .verify, .generateMac, .verifyMac, .deriveSharedSecret:
            return true
        default: return false
        }
    }
}
