/// The AWS JSON 1.1 protocol as KMS speaks it, for both ends: the client sends these, the server
/// expects them.
public enum KMSJSONProtocol {
    /// `X-Amz-Target: TrentService.<Operation>`.
    public static let targetPrefix = "TrentService."
    public static let contentType = "application/x-amz-json-1.1"
}
