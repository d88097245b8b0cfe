import ArgumentParser
import Foundation
import KMSEngine

/// `kmsd serve --dev`: a KMS for tests in one command, like local-kms or moto, that is still a
/// real KMS — SigV4 verified, policies, states and limits enforced — but keeps nothing: a store in
/// a new temporary directory (removed at exit), a root key generated in memory, one account and
/// one access key whose credentials are printed.
struct DevOptions: ParsableArguments {
    /// The example credentials of AWS's own documentation: recognisable as not secret.
    static let wellKnownAccessKeyID = "AKIAIOSFODNN7EXAMPLE"
    static let wellKnownSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

    @Flag(help: "Development mode: a throwaway store, well-known credentials, 127.0.0.1 only; nothing is persisted.")
    var dev = false

    @Option(help: "Dev mode: the account ID (12 digits).")
    var account = "111122223333"

    @Option(help: "Dev mode: the TCP port on 127.0.0.1 (0 for any free one).")
    var port = 8080

    @Option(help: "Dev mode: the access key ID (default $AWS_ACCESS_KEY_ID, else AKIAIOSFODNN7EXAMPLE).")
    var accessKeyID: String?

    @Option(help: "Dev mode: the secret access key (default $AWS_SECRET_ACCESS_KEY, else AWS's documented example).")
    var secretAccessKey: String?

    func validate() throws {
        try validateGivenCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)
    }

    /// Credentials: flags, then the environment (both), then the well-known pair.
    var credentials: (id: String, secret: String) {
        if let accessKeyID, let secretAccessKey { return (accessKeyID, secretAccessKey) }
        let environment = ProcessInfo.processInfo.environment
        if let id = environment["AWS_ACCESS_KEY_ID"], let secret = environment["AWS_SECRET_ACCESS_KEY"] { return (id, secret) }
        return (Self.wellKnownAccessKeyID, Self.wellKnownSecret)
    }
}

/// A running dev store: its engine, and the directory to remove at exit.
struct DevSession {
    let directory: String
    let engine: KMSEngine
    let accessKeyID: String
    let secret: String

    static func start(_ options: DevOptions) throws -> DevSession {
        let (id, secret) = options.credentials
        var template = Array(URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("kmsd-dev-XXXXXX").path.utf8CString)
        guard let made = mkdtemp(&template) else { throw CommandFailure("cannot make a temporary directory: \(String(cString: strerror(errno)))") }
        let directory = String(cString: made)
        do {
            let engine = try KMSEngine.open(path: directory + "/keys.sqlite", rootKey: RootKey.generate(), schedulerInterval: .seconds(60))
            do {
                _ = try engine.createAccount(accountID: options.account, name: "default")
                // Whatever the environment holds, as LocalStack and moto take it (test/test, testing).
                _ = try engine.createAccessKey(account: options.account, accessKeyID: id, secretAccessKey: secret, anyShape: true)
            } catch let error as KMSError {
                throw CommandFailure("kmsd serve --dev: \(error.message)")
            }
            return DevSession(directory: directory, engine: engine, accessKeyID: id, secret: secret)
        } catch {
            try? FileManager.default.removeItem(atPath: directory)
            throw error
        }
    }

    /// The loud banner: what this is, and how to point clients at it.
    func announce(endpoint: String, account: String) {
        print("kmsd: *** DEV MODE: a throwaway key store in \(directory), removed at exit; NOTHING IS PERSISTED. "
              + "Not for real keys. ***")
        print("kmsd: dev account \(account); credentials (SigV4 is verified):")
        print("  export AWS_ACCESS_KEY_ID=\(accessKeyID)")
        print("  export AWS_SECRET_ACCESS_KEY=\(secret)")
        print("  export AWS_DEFAULT_REGION=us-east-1 AWS_ENDPOINT_URL_KMS=\(endpoint)")
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }
}
