public struct DescribeKeyResponse: Sendable { public var keyMetadata: KeyMetadata }

extension KMSEngine {
    /// DescribeKey: the key's metadata; takes key ID, key ARN, alias name or alias ARN.
    /// A predefined AWS alias with no key yet (`alias/aws/kmsfs`) gets its AWS-managed key now,
    /// as AWS's DescribeKey does.
    public func describeKey(keyID: String, caller: Caller) throws -> DescribeKeyResponse {
        if let service = Self.predefinedService(keyID, caller: caller), !hasAlias("alias/aws/" + service, caller: caller),
           decide(.describeKey, caller, target: .account(caller.account), in: state.withLock { $0 }).allowed {
            _ = try serviceManagedKey(service: service, caller: caller)
        }
        return try perform(.describeKey, caller) { record, state in
            let key = try managedKey(keyID, action: .describeKey, allowAlias: true, extra: Self.requestAlias(keyID),
                                     for: caller, in: state, record: &record)
            return DescribeKeyResponse(keyMetadata: metadata(of: key, in: state))
        }
    }
}

extension KMSEngine {
    /// The service of `alias/aws/<service>` (or its ARN in the caller's account and Region) when
    /// kmsd predefines it.
    static func predefinedService(_ keyID: String, caller: Caller) -> String? {
        let prefix = "arn:aws:kms:\(caller.region):\(caller.account):"
        let name = keyID.hasPrefix(prefix) ? String(keyID.dropFirst(prefix.count)) : keyID
        guard name.hasPrefix("alias/aws/") else { return nil }
        let service = String(name.dropFirst("alias/aws/".count))
        return KMSJSONProtocol.managedServices.contains(service) ? service : nil
    }

    func hasAlias(_ name: String, caller: Caller) -> Bool {
        state.withLock { $0.aliases[.init(account: caller.account, region: caller.region, name: name)]?.targetKeyID != nil }
    }
}
