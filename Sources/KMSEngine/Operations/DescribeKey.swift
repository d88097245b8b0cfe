public struct DescribeKeyResponse: Sendable { public var keyMetadata: KeyMetadata }

extension KMSEngine {
    /// DescribeKey: the key's metadata; takes key ID, key ARN, alias name or alias ARN.
    public func describeKey(keyID: String, caller: Caller) throws -> DescribeKeyResponse {
        try perform("DescribeKey", caller) { record, state in
            let key = try resolve(keyID, for: caller, allowAlias: true, in: state)
            record.keyARN = key.record.arn
            try authorize("DescribeKey", caller, key.record)
            return DescribeKeyResponse(keyMetadata: key.record.metadata)
        }
    }
}
