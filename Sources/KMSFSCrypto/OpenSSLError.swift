internal import COpenSSL

extension CryptoError {
    /// Drains OpenSSL's thread-local error queue into a ``CryptoError/openSSL(operation:reason:)``.
    ///
    /// The queue must be emptied after every failure, or the stale entry is blamed on a later call.
    static func fromOpenSSL(_ operation: String) -> CryptoError {
        var reason = "unknown error"
        var first = true
        while case let code = ERR_get_error(), code != 0 {
            if first {
                var text = [CChar](repeating: 0, count: 256)
                ERR_error_string_n(code, &text, text.count)
                reason = String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                first = false
            }
        }
        return .openSSL(operation: operation, reason: reason)
    }
}
