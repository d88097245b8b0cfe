import KMSAuthorization

/// Who is calling, from where: the context every engine operation runs in.
///
/// The wire layer fills it from the verified SigV4 credential (principal, account), the
/// credential scope (region) and the connection (source address, TLS, the listener's endpoint
/// policy); the embedded client fills it from the volume's configuration.
public struct Caller: Sendable, Equatable {
    /// A 12-digit AWS account ID.
    public var account: String
    /// The region, for example `us-east-1`.
    public var region: String
    /// The principal's ARN: `arn:aws:iam::<account>:root`, a user or role ARN, or an assumed-role
    /// session ARN (`arn:aws:sts::<account>:assumed-role/<role>/<session>`).
    public var principal: String
    /// An ID for this request, echoed in the audit trail.
    public var requestID: String
    /// The service calling on the principal's behalf (`kms:ViaService`), if any. Only such calls
    /// may use that service's AWS-managed key.
    public var viaService: String?
    /// The service is the client's own word (a header over the wire), not this process's: it
    /// scopes `kms:ViaService` — the AWS-managed key's policy — but never makes the call count
    /// as an AWS service's (`aws:ViaAWSService`, `kms:GrantIsForAWSResource`), which would let
    /// any principal step around conditions written against direct use.
    public var viaServiceClaimed = false
    /// Whether a service made this call, for the conditions that trust it.
    public var isViaTrustedService: Bool { viaService != nil && !viaServiceClaimed }
    /// The client's address (`aws:SourceIp`), when it came over the network.
    public var sourceIP: String?
    /// Whether the request came over TLS (`aws:SecureTransport`); nil in process.
    public var secureTransport: Bool?
    /// The policy of the endpoint the request came through, if it has one: it can only narrow
    /// what the other policies allow (AWS's VPC endpoint policies).
    public var endpointPolicy: Policy?
    /// DryRun: authorize and check the key's state, then stop with DryRunOperationException
    /// instead of doing the work.
    public var dryRun: Bool = false
    /// The client's User-Agent (capped), recorded in the audit trail: kmsfs marks the calls
    /// that refill its key pool with it.
    public var userAgent: String?

    public init(account: String, region: String, principal: String? = nil, requestID: String = "", viaService: String? = nil,
                sourceIP: String? = nil, secureTransport: Bool? = nil, endpointPolicy: Policy? = nil) {
        self.account = account
        self.region = region
        self.principal = principal ?? "arn:aws:iam::\(account):root"
        self.requestID = requestID
        self.viaService = viaService
        self.sourceIP = sourceIP
        self.secureTransport = secureTransport
        self.endpointPolicy = endpointPolicy
    }

    /// The role of an assumed-role session, nil for other principals.
    public var roleARN: String? { PrincipalARN.role(ofSession: principal) }
}
