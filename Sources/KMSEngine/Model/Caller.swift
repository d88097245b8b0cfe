/// Who is calling, from where: the context every engine operation runs in.
///
/// The wire layer fills it from the verified SigV4 credential (principal, account) and the
/// credential scope (region); the embedded client fills it from the volume's configuration.
public struct Caller: Sendable, Equatable {
    /// A 12-digit AWS account ID.
    public var account: String
    /// The region, for example `us-east-1`.
    public var region: String
    /// The principal's ARN: `arn:aws:iam::<account>:root` or a user or role ARN.
    public var principal: String
    /// An ID for this request, echoed in the audit trail.
    public var requestID: String
    /// The service calling on the principal's behalf (`kms:ViaService`), if any. Only such calls
    /// may use that service's AWS-managed key.
    public var viaService: String?

    public init(account: String, region: String, principal: String? = nil, requestID: String = "", viaService: String? = nil) {
        self.account = account
        self.region = region
        self.principal = principal ?? "arn:aws:iam::\(account):root"
        self.requestID = requestID
        self.viaService = viaService
    }
}
