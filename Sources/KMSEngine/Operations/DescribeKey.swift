public struct DescribeKeyResponse: Sendable { public var keyMetadata: KeyMetadata }

extension KMSEngine {
    /// DescribeKey: the key's metadata; takes key ID, key ARN, alias name or alias ARN.
    public func describeKey(keyID: String, caller: Caller) throws -> DescribeKeyResponse {
        try perform(.describeKey, caller) { record, state in
            let key = try managedKey(keyID, action: .describeKey, allowAlias: true, extra: Self.requestAlias(keyID),
                                     for: caller, in: state, record: &record)
            return DescribeKeyResponse(keyMetadata: metadata(of: key, in: state))
        }
    }
}
