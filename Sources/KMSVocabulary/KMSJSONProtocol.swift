/// The AWS JSON 1.1 protocol as KMS speaks it, for both ends: the client sends these, the server
/// expects them.
public enum KMSJSONProtocol {
    /// `X-Amz-Target: TrentService.<Operation>`.
    public static let targetPrefix = "TrentService."
    public static let contentType = "application/x-amz-json-1.1"
    /// The service a request comes through (`kmsfs`), which kmsd takes as `kms:ViaService` when
    /// the header is signed — what lets a kmsfs volume use the AWS-managed `alias/aws/kmsfs`,
    /// whose policy allows use only through kmsfs. Like AWS's, it scopes how the account's
    /// principals use a key; it is the client's word, not a proof of which program sent it.
    public static let viaServiceHeader = "X-Kmsfs-Via-Service"
    /// The services kmsd keeps an AWS-managed key for, made on first DescribeKey of `alias/aws/<service>`.
    public static let managedServices: Set<String> = ["kmsfs"]
}
