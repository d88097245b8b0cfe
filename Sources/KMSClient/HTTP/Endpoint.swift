import Foundation

/// Where requests go: `http://host[:port]`, `https://host[:port]`, or `unix:///path/to.sock`.
public enum Endpoint: Sendable, Equatable, CustomStringConvertible {
    case tcp(host: String, port: Int, tls: Bool)
    case unix(path: String)

    /// The endpoints of a service with several instances, in the order they are tried: one
    /// endpoint, or several separated by commas or semicolons (mount options split on commas, so
    /// `-o kms_endpoint=` takes semicolons). No endpoint may hold either character.
    public static func list(parsing text: String) throws(KMSClientError) -> [Endpoint] {
        let parts = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "," || $0 == ";" }).map { $0.trimmingCharacters(in: .whitespaces) }
        guard !parts.isEmpty, !parts.contains(where: \.isEmpty) else {
            throw KMSClientError(.invalidRequest, message: "endpoint list \(text) is empty or has an empty entry")
        }
        var endpoints: [Endpoint] = []
        for part in parts { endpoints.append(try Endpoint(parsing: part)) }
        return endpoints
    }

    public init(parsing url: String) throws(KMSClientError) {
        func invalid() -> KMSClientError {
            KMSClientError(.invalidRequest, message: "endpoint \(url) is not http://HOST[:PORT], https://HOST[:PORT] or unix:///PATH")
        }
        if url.hasPrefix("unix://") {
            let path = String(url.dropFirst(7))
            guard path.hasPrefix("/") else { throw invalid() }
            self = .unix(path: path)
            return
        }
        let tls: Bool
        let rest: Substring
        if url.hasPrefix("https://") { tls = true; rest = url.dropFirst(8) }
        else if url.hasPrefix("http://") { tls = false; rest = url.dropFirst(7) }
        else { throw invalid() }
        let authority = rest.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var host = String(authority), port = tls ? 443 : 80
        if authority.hasPrefix("[") {  // [::1]:8080
            guard let close = authority.firstIndex(of: "]") else { throw invalid() }
            host = String(authority[authority.index(after: authority.startIndex)..<close])
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") { guard let p = Int(after.dropFirst()) else { throw invalid() }; port = p }
        } else if let colon = authority.lastIndex(of: ":") {
            host = String(authority[..<colon])
            guard let p = Int(authority[authority.index(after: colon)...]) else { throw invalid() }
            port = p
        }
        guard !host.isEmpty, (1...65535).contains(port) else { throw invalid() }
        self = .tcp(host: host, port: port, tls: tls)
    }

    /// The Host header (signed by SigV4).
    package var hostHeader: String {
        switch self {
        case let .tcp(host, port, tls):
            let name = host.contains(":") ? "[\(host)]" : host
            return (tls && port == 443) || (!tls && port == 80) ? name : "\(name):\(port)"
        case .unix: return "localhost"
        }
    }

    public var description: String {
        switch self {
        case let .tcp(host, port, tls): return "\(tls ? "https" : "http")://\(host):\(port)"
        case let .unix(path): return "unix://\(path)"
        }
    }
}
