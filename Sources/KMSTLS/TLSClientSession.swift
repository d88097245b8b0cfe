internal import COpenSSL

/// A TLS client session over an already connected socket: TLS 1.2 or later, the server's
/// certificate verified against the system's CAs or a given bundle, and its name checked.
///
/// The only file that calls libssl. Blocking, like the socket under it (its receive and send
/// timeouts apply). One thread at a time.
public final class TLSClientSession {
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        /// A certificate or protocol refusal: trying again will not help.
        public let isVerificationFailure: Bool
    }

    private let context: OpaquePointer
    private let ssl: OpaquePointer

    /// A client certificate chain and its private key (PEM files), for servers that require
    /// mutual TLS (kmsd's peers).
    public struct Identity: Sendable, Equatable {
        public var certificate: String
        public var key: String
        public init(certificate: String, key: String) {
            self.certificate = certificate
            self.key = key
        }
    }

    /// Performs the handshake on `fd` for server `host`.
    /// - Parameters:
    ///   - caBundle: a PEM file of trusted CAs; nil for the system's.
    ///   - identity: the certificate to present, if the server asks for one.
    ///   - serverName: the name the server's certificate must carry, when not `host` (a peer
    ///     reached by address and known by name).
    public init(fd: Int32, host: String, caBundle: String?, identity: Identity? = nil, serverName: String? = nil) throws(Failure) {
        guard let method = TLS_client_method(), let context = SSL_CTX_new(method) else {
            throw Failure(description: "cannot create a TLS context", isVerificationFailure: false)
        }
        self.context = context
        // The context must be fully configured before SSL_new: a session copies its verify mode
        // and trust settings at creation (configuring them later silently verifies nothing).
        _ = COpenSSL_SSL_CTX_set_min_proto_version(context, TLS1_2_VERSION)
        let loaded = caBundle.map { SSL_CTX_load_verify_locations(context, $0, nil) } ?? SSL_CTX_set_default_verify_paths(context)
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let identity {
            guard SSL_CTX_use_certificate_chain_file(context, identity.certificate) == 1,
                  SSL_CTX_use_PrivateKey_file(context, identity.key, SSL_FILETYPE_PEM) == 1, SSL_CTX_check_private_key(context) == 1 else {
                let reason = Self.lastError()
                SSL_CTX_free(context)
                throw Failure(description: "cannot load the client certificate \(identity.certificate) and key \(identity.key): \(reason)",
                              isVerificationFailure: true)
            }
        }
        guard let ssl = SSL_new(context) else {
            SSL_CTX_free(context)
            throw Failure(description: "cannot create a TLS session", isVerificationFailure: false)
        }
        self.ssl = ssl
        guard loaded == 1 else {
            throw Failure(description: "cannot load trusted certificates from \(caBundle ?? "the system store")", isVerificationFailure: true)
        }
        guard SSL_set_fd(ssl, fd) == 1 else { throw Failure(description: "SSL_set_fd failed", isVerificationFailure: false) }
        let expected = serverName ?? host
        _ = COpenSSL_SSL_set_tlsext_host_name(ssl, expected)
        // Check the name: an IP address against the certificate's IP entries, a name against its DNS names.
        let isIP = expected.allSatisfy { $0.isNumber || $0 == "." } || expected.contains(":")
        let hostChecked = isIP ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), expected) : SSL_set1_host(ssl, expected)
        guard hostChecked == 1 else { throw Failure(description: "cannot set the expected host \(expected)", isVerificationFailure: true) }
        guard SSL_connect(ssl) == 1 else {
            let verify = SSL_get_verify_result(ssl)
            let reason = verify != X509_V_OK ? String(cString: X509_verify_cert_error_string(verify)) : Self.lastError()
            throw Failure(description: "TLS handshake with \(host) failed: \(reason)", isVerificationFailure: verify != X509_V_OK)
        }
    }

    deinit {
        SSL_shutdown(ssl)
        SSL_free(ssl)
        SSL_CTX_free(context)
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: [UInt8]) throws(Failure) {
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { SSL_write(ssl, $0.baseAddress! + offset, Int32($0.count - offset)) }
            guard n > 0 else { throw Failure(description: "TLS write failed: \(Self.lastError())", isVerificationFailure: false) }
            offset += Int(n)
        }
    }

    /// Reads up to `count` bytes; an empty result means the peer closed the session.
    public func read(max count: Int) throws(Failure) -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: count)
        let n = buffer.withUnsafeMutableBytes { SSL_read(ssl, $0.baseAddress, Int32(count)) }
        if n > 0 { return Array(buffer[0..<Int(n)]) }
        let error = SSL_get_error(ssl, n)
        if error == SSL_ERROR_ZERO_RETURN { return [] }
        throw Failure(description: "TLS read failed: \(error == SSL_ERROR_SYSCALL ? "connection error or timeout" : Self.lastError())",
                      isVerificationFailure: false)
    }

    private static func lastError() -> String {
        let code = ERR_get_error()
        ERR_clear_error()
        guard code != 0 else { return "unknown error" }
        var text = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &text, text.count)
        return String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
