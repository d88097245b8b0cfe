import Foundation

/// Where a remote client sends requests and as whom, resolved the way the AWS SDKs resolve it.
///
/// Order, first found wins:
/// - endpoint: explicit, `AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, the profile's `endpoint_url`,
///   then AWS's own `https://kms.<region>.amazonaws.com`;
/// - region: explicit, `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`;
/// - credentials: explicit, `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`),
///   the profile in the credentials file, then in the config file;
/// - profile: explicit, `AWS_PROFILE`, `AWS_DEFAULT_PROFILE`, `default`; files from
///   `AWS_SHARED_CREDENTIALS_FILE` / `AWS_CONFIG_FILE` or `~/.aws/credentials` / `~/.aws/config`.
public struct AWSConfiguration: Sendable, Equatable {
    public var endpoint: String
    public var region: String
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(endpoint: String, region: String, accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.endpoint = endpoint
        self.region = region
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    /// What the caller states outright (command-line flags, volume configuration).
    public struct Explicit: Sendable {
        public var endpoint: String?
        public var region: String?
        public var profile: String?
        public var accessKeyID: String?
        public var secretAccessKey: String?
        public var sessionToken: String?
        public init(endpoint: String? = nil, region: String? = nil, profile: String? = nil,
                    accessKeyID: String? = nil, secretAccessKey: String? = nil, sessionToken: String? = nil) {
            self.endpoint = endpoint
            self.region = region
            self.profile = profile
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
        }
    }

    /// Resolves from `explicit`, then `environment`, then the profile files under `home`.
    /// - Throws: ``KMSClientError`` (`.invalidRequest`) naming what is missing.
    public static func resolve(_ explicit: Explicit = Explicit(),
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               home: String = NSHomeDirectory()) throws(KMSClientError) -> AWSConfiguration {
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        let profileName = explicit.profile ?? env("AWS_PROFILE") ?? env("AWS_DEFAULT_PROFILE") ?? "default"
        let credentialsFile = INIFile(path: env("AWS_SHARED_CREDENTIALS_FILE") ?? home + "/.aws/credentials")
        let configFile = INIFile(path: env("AWS_CONFIG_FILE") ?? home + "/.aws/config")
        let fromCredentials = credentialsFile?.sections[profileName] ?? [:]
        let fromConfig = configFile?.sections[profileName == "default" ? "default" : "profile " + profileName] ?? [:]
        func profile(_ key: String) -> String? { fromCredentials[key] ?? fromConfig[key] }

        guard let region = explicit.region ?? env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? profile("region") else {
            throw KMSClientError(.invalidRequest, message: "no AWS region: set --region, AWS_REGION or region in profile \(profileName)")
        }
        let endpoint = explicit.endpoint ?? env("AWS_ENDPOINT_URL_KMS") ?? env("AWS_ENDPOINT_URL") ?? profile("endpoint_url")
            ?? "https://kms.\(region).amazonaws.com"

        let credentials: (String, String, String?)
        if let id = explicit.accessKeyID, let secret = explicit.secretAccessKey {
            credentials = (id, secret, explicit.sessionToken)
        } else if let id = env("AWS_ACCESS_KEY_ID"), let secret = env("AWS_SECRET_ACCESS_KEY") {
            credentials = (id, secret, env("AWS_SESSION_TOKEN"))
        } else if let id = profile("aws_access_key_id"), let secret = profile("aws_secret_access_key") {
            credentials = (id, secret, profile("aws_session_token"))
        } else {
            throw KMSClientError(.accessDenied, message: "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile \(profileName) in ~/.aws/credentials")
        }
        return AWSConfiguration(endpoint: endpoint, region: region, accessKeyID: credentials.0,
                                secretAccessKey: credentials.1, sessionToken: credentials.2)
    }
}

/// The INI dialect of ~/.aws/credentials and ~/.aws/config: `[section]`, `key = value`, `#`/`;`
/// comments.
struct INIFile {
    var sections: [String: [String: String]] = [:]

    init?(path: String) {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        var current: String?
        for raw in String(decoding: data, as: UTF8.self).split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") || line.hasPrefix(";") { continue }
            if line.hasPrefix("["), line.hasSuffix("]") {
                let name = String(line.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                current = name
                sections[name, default: [:]] = sections[name] ?? [:]
            } else if let current, let equals = line.firstIndex(of: "=") {
                let key = line[..<equals].trimmingCharacters(in: .whitespaces)
                let value = line[line.index(after: equals)...].trimmingCharacters(in: .whitespaces)
                sections[current]?[key] = value
            }
        }
    }
}
