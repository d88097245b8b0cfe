import ArgumentParser

/// Credentials chosen by the operator come as a pair: an access key ID without its secret (or the
/// reverse) is a mistake to report, not a request to generate the other half.
func validateGivenCredentials(accessKeyID: String?, secretAccessKey: String?) throws {
    guard (accessKeyID == nil) == (secretAccessKey == nil) else {
        throw ValidationError("give both --access-key-id and --secret-access-key, or neither")
    }
}
