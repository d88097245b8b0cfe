import Synchronization

/// Signing keys by secret, day, region and service: four HMACs saved on every request after a
/// credential's first of the day.
///
/// Bounded: when it reaches ``capacity`` entries it is emptied (entries are cheap to recompute).
/// The keys are derived secrets; they live only in this process's memory, like the secrets.
final class SigningKeyCache: Sendable {
    static let capacity = 4096
    private let keys = Mutex<[String: [UInt8]]>([:])

    func key(secret: String, date: String, region: String, service: String) -> [UInt8] {
        let name = secret + "\u{0}" + date + "\u{0}" + region + "\u{0}" + service
        if let key = keys.withLock({ $0[name] }) { return key }
        let key = SigV4.signingKey(secret: secret, date: date, region: region, service: service)
        keys.withLock { cache in
            if cache.count >= Self.capacity { cache.removeAll(keepingCapacity: true) }
            cache[name] = key
        }
        return key
    }
}
