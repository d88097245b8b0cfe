import Foundation
import Synchronization

/// Request rates per account and operation class, as AWS KMS groups its quotas: cryptographic
/// operations share one rate (Encrypt, Decrypt, ReEncrypt, GenerateDataKey, Sign, GenerateMac,
/// ...), data key pairs have their own (RSA and ECC key generation is costly), and management
/// operations share another. A request over its class's rate is refused with
/// ThrottlingException, as AWS refuses it; clients back off and retry (kmsfs's client does).
///
/// Each (account, class) has a token bucket holding one second of its rate (at least one
/// request, so a rate below one a second still lets one through now and then): a burst of that
/// size passes, then requests pass at the rate. A class without a rate is not limited (the
/// default: kmsd serves as fast as it can unless told otherwise).
public struct RequestQuotas: Sendable, Equatable {
    public enum Class: String, CaseIterable, Sendable {
        case cryptographic, dataKeyPair = "data-key-pair", management
    }

    /// Requests per second, per account.
    public var rates: [Class: Double] = [:]

    public init(rates: [Class: Double] = [:]) { self.rates = rates }

    /// `CLASS=RATE` (requests per second), as `kmsd serve --quota` takes it.
    public mutating func set(_ text: String) throws(KMSError) {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        // Decimal digits only (no hex, no exponent), from 0.01 to a million a second.
        let decimal = parts.count == 2 && !parts[1].isEmpty && parts[1].allSatisfy { ("0"..."9").contains($0) || $0 == "." }
            && parts[1].filter { $0 == "." }.count <= 1
        guard decimal, let kind = Class(rawValue: parts[0]), let rate = Double(parts[1]), (0.01...1_000_000).contains(rate) else {
            throw KMSError(.validation, "a quota is CLASS=RATE with CLASS one of \(Class.allCases.map(\.rawValue).joined(separator: ", ")) and RATE from 0.01 to 1000000 requests per second, in decimal: \(text)")
        }
        rates[kind] = rate
    }
}

/// The buckets of ``RequestQuotas``, one per account and class, made on first use.
final class QuotaBuckets: Sendable {
    private struct Bucket {
        var tokens: Double
        var last: Date
    }

    private let quotas: Mutex<RequestQuotas>
    private let buckets = Mutex<[String: Bucket]>([:])

    init(_ quotas: RequestQuotas = RequestQuotas()) { self.quotas = Mutex(quotas) }

    func replace(_ new: RequestQuotas) {
        quotas.withLock { $0 = new }
        buckets.withLock { $0.removeAll() }
    }

    /// Whether requests of `kind` have a quota at all.
    func limits(_ kind: RequestQuotas.Class) -> Bool { quotas.withLock { $0.rates[kind] != nil } }

    /// Whether a request of `kind` by `account` at `now` is within its quota (and counts it).
    func admit(account: String, _ kind: RequestQuotas.Class, at now: Date) -> Bool {
        guard let rate = quotas.withLock({ $0.rates[kind] }) else { return true }
        return buckets.withLock { buckets in
            let name = kind.rawValue + " " + account
            let capacity = max(rate, 1)
            var bucket = buckets[name] ?? Bucket(tokens: capacity, last: now)
            bucket.tokens = min(capacity, bucket.tokens + max(0, now.timeIntervalSince(bucket.last)) * rate)
            bucket.last = now
            let admitted = bucket.tokens >= 1
            if admitted { bucket.tokens -= 1 }
            buckets[name] = bucket
            return admitted
        }
    }
}
