internal import COpenSSL

/// Comparisons whose time does not depend on where the inputs differ (signatures, MACs).
public enum ConstantTime {
    /// Whether `a` and `b` are equal; the length is not secret, the contents are.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { a in b.withUnsafeBytes { b in CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0 } }
    }
}
