import ArgumentParser

/// `kmsd`: a key management service that speaks the AWS KMS API.
@main
struct KMSDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmsd",
        abstract: "A key management service that speaks the AWS KMS API (JSON 1.1, SigV4).",
        subcommands: [InitCommand.self, ServeCommand.self, AdminCommand.self, AuditCommand.self, XKSProxyCommand.self]
    )
}

/// A failure at run time (a bad seed file, a refused credential): printed as "Error: …" without
/// the usage text that ArgumentParser adds to a ValidationError.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
