/// Who a key is: its account, its Region and its key ID. A key ID alone does not say it: the
/// replicas of a multi-Region key share their `mrk-` ID across Regions, and a seeded key may
/// share an ID with another account's.
struct KeyIdentity: Hashable, Sendable, Codable, CustomStringConvertible {
    var account: String
    var region: String
    var keyID: String

    var description: String { ARN.key(keyID, account: account, region: region) }
}

extension KeyRecord {
    var identity: KeyIdentity { KeyIdentity(account: account, region: region, keyID: keyID) }
}

extension KeyIdentity {
    /// The label a key's material is sealed under (with its version): the whole identity, so a
    /// sealed row moved to a key of the same ID in another account or Region does not open.
    var materialLabel: String { "key \(account) \(region) \(keyID)" }
}

/// The engine's keys by identity, with the one lookup a bare key ID needs: a ciphertext blob
/// names its key by ID, and the caller's Region (then account) says which key that is.
struct KeyTable: Sendable, Sequence {
    private var byIdentity: [KeyIdentity: LiveKey] = [:]
    /// The identities with each key ID (almost always one).
    private var byID: [String: [KeyIdentity]] = [:]

    subscript(identity: KeyIdentity) -> LiveKey? {
        get { byIdentity[identity] }
        set {
            if newValue == nil {
                guard byIdentity.removeValue(forKey: identity) != nil else { return }
                byID[identity.keyID]?.removeAll { $0 == identity }
                if byID[identity.keyID]?.isEmpty == true { byID[identity.keyID] = nil }
            } else {
                if byIdentity.updateValue(newValue!, forKey: identity) == nil { byID[identity.keyID, default: []].append(identity) }
            }
        }
    }

    /// The key `keyID` names in `region`: `account`'s, else the only other one (nil if several
    /// other accounts have a key of that ID there: which one is not for this lookup to guess).
    func find(_ keyID: String, region: String, preferring account: String) -> LiveKey? {
        guard let identities = byID[keyID] else { return nil }
        // Decrypt's path: no array made, one or two identities walked.
        var other: KeyIdentity?, others = 0
        for identity in identities where identity.region == region {
            if identity.account == account { return byIdentity[identity] }
            other = identity
            others += 1
        }
        return others == 1 ? other.flatMap { byIdentity[$0] } : nil
    }

    /// Every key with this ID, wherever it is (tests, and finding a blob's key for scheduling).
    func all(_ keyID: String) -> [LiveKey] { (byID[keyID] ?? []).compactMap { byIdentity[$0] } }

    var values: Dictionary<KeyIdentity, LiveKey>.Values { byIdentity.values }
    var identities: Dictionary<KeyIdentity, LiveKey>.Keys { byIdentity.keys }
    var count: Int { byIdentity.count }

    func makeIterator() -> Dictionary<KeyIdentity, LiveKey>.Iterator { byIdentity.makeIterator() }
}
