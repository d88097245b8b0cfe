import ArgumentParser
import Foundation
import KMSEngine

/// `kmsd audit`: verify the chain, or print records as JSON lines.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify or read the audit trail (with kmsd stopped).",
        subcommands: [Verify.self, Tail.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Verify the audit chain; exit 1 if it is broken.")
        @OptionGroup var storeOptions: StoreOptions
        func run() throws {
            let result = try storeOptions.openEngine().verifyAudit()
            if let problem = result.problem {
                print("audit trail BROKEN after \(result.verifiedCount) records: \(problem)")
                throw ExitCode(1)
            }
            print("audit trail intact: \(result.verifiedCount) records")
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print audit records as JSON lines.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "Only records about this key (ID or ARN).") var key: String?
        @Option(help: "Only records at or after this time (ISO 8601, e.g. 2026-11-23T10:00:00Z).") var since: String?
        @Option(help: "At most this many records (the newest).") var limit: Int = 100
        func run() throws {
            var sinceDate: Date?
            if let since {
                guard let date = ISO8601DateFormatter().date(from: since) else { throw ValidationError("--since takes an ISO 8601 time") }
                sinceDate = date
            }
            let records = try storeOptions.openEngine().auditRecords().filter { record in
                (key == nil || record.keyARN == key || record.keyARN?.hasSuffix("/" + key!) == true)
                    && (sinceDate == nil || record.time >= sinceDate!)
            }
            for record in records.suffix(limit) { print(String(decoding: record.canonicalJSON, as: UTF8.self)) }
        }
    }
}
