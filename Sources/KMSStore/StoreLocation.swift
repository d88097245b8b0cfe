/// Where a key store is: an SQLite file (the embedded default), or a PostgreSQL database
/// named by a libpq connection URI (`postgres://` or `postgresql://`).
public enum StoreLocation: Sendable, Equatable, CustomStringConvertible {
    case sqlite(path: String)
    case postgres(url: String)

    public init(_ text: String) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(url: text)
        } else {
            self = .sqlite(path: text)
        }
    }

    /// For messages and logs: a password in the URI is not shown.
    public var description: String {
        switch self {
        case let .sqlite(path): return path
        case let .postgres(url): return Self.redacted(url)
        }
    }

    /// `url` with the password of its user-info (`user:password@`) replaced by `***`.
    static func redacted(_ url: String) -> String {
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authority = rest.prefix { $0 != "/" && $0 != "?" }
        guard let at = authority.lastIndex(of: "@"), let colon = authority[..<at].firstIndex(of: ":") else { return url }
        return String(url[..<authority.index(after: colon)]) + "***" + String(url[at...])
    }
}
