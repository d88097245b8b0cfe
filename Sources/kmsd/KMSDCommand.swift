import ArgumentParser
import Dispatch
import Foundation

/// `kmsd`: a key management service that speaks the AWS KMS API.
@main
struct KMSDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kmsd",
        abstract: "A key management service that speaks the AWS KMS API (JSON 1.1, SigV4).",
        subcommands: [InitCommand.self, ServeCommand.self, AdminCommand.self, AuditCommand.self, BackupCommand.self, RestoreCommand.self, XKSProxyCommand.self]
    )
}

/// A failure at run time (a bad seed file, a refused credential): printed as "Error: …" without
/// the usage text that ArgumentParser adds to a ValidationError.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Blocks until SIGTERM or SIGINT (which no longer end the process by themselves), for a server
/// to shut down cleanly after.
func waitForTermination() {
    let stop = DispatchSemaphore(value: 0)
    var sources: [any DispatchSourceSignal] = []
    for signalNumber in [SIGTERM, SIGINT] {
        signal(signalNumber, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signalNumber, queue: .global())
        source.setEventHandler { stop.signal() }
        source.resume()
        sources.append(source)
    }
    stop.wait()
    withExtendedLifetime(sources) {}
}
