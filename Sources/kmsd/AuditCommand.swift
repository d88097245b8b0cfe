import ArgumentParser
import Foundation
import KMSEngine

/// `kmsd audit`: verify the chain, or print records as JSON lines.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Verify or read the audit trail (beside a running kmsd, or with it stopped).",
        subcommands: [Verify.self, Tail.self]
    )

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the audit chain; exit 1 if it is broken.",
            discussion: """
            With kmsd stopped, opens the store (every record checked as at kmsd's start) and verifies the \
            chain. While kmsd runs (one instance, or several --shared), verifies the chain read-only in one \
            snapshot, beside them; the running instances check the records.
            """)
        @OptionGroup var storeOptions: StoreOptions
        func run() throws {
            let result: AuditVerification
            do {
                result = try storeOptions.openEngine().verifyAudit()
            } catch let failure as CommandFailure where "\(failure)".contains("in use by") {
                print("kmsd is running on this store: verifying the trail read-only, beside it")
                let anchor = FileManager.default.fileExists(atPath: storeOptions.anchor) ? storeOptions.anchor : nil
                result = try AuditReader(path: storeOptions.store).verify(rootKey: RootKey(loading: storeOptions.rootKeySource), anchorPath: anchor)
            }
            if let problem = result.problem {
                print("audit trail BROKEN after \(result.verifiedCount) records: \(problem)")
                throw ExitCode(1)
            }
            print("audit trail intact: \(result.verifiedCount) records")
        }
    }

    struct Tail: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print audit records (JSON lines, or text); works while kmsd runs.",
            discussion: "Reads the store read-only, beside a running kmsd. It does not verify the chain: kmsd audit verify does.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "Only records about this key (ID, ARN or alias/NAME).") var key: String?
        @Option(help: "Only records at or after this time (ISO 8601, e.g. 2026-11-23T10:00:00Z).") var since: String?
        @Option(help: "At most this many records (the newest) before following.") var limit: Int = 100
        @Flag(name: [.short, .long], help: "Keep printing records as kmsd writes them (until interrupted).") var follow = false
        @Option(help: "json (one canonical JSON record per line) or text (time, operation, principal, key, outcome).")
        var format: Format = .json

        @Option(help: """
            The data keys kmsfs's key pool makes ahead of need (User-Agent "kmsfs (key-pool)", as the client says): \
            show them, hide them, or group each run of them (one principal, operation and key) into one line.
            """)
        var keyPool: PoolRecords = .show

        enum Format: String, ExpressibleByArgument { case json, text }
        enum PoolRecords: String, ExpressibleByArgument { case show, hide, group }

        static func isPoolRecord(_ record: AuditRecord) -> Bool { record.userAgent?.contains("(key-pool)") == true }

        func run() throws {
            var sinceDate: Date?
            if let since {
                guard let date = ISO8601DateFormatter().date(from: since) else { throw ValidationError("--since takes an ISO 8601 time") }
                sinceDate = date
            }
            let reader: AuditReader
            do { reader = try AuditReader(path: storeOptions.store) } catch { throw ValidationError("\(error)") }
            let keyIDs: [String]? = try key.map { key in key.hasPrefix("alias/") ? try reader.keyIDs(forAlias: key) : [key] }
            func selected(_ record: AuditRecord) -> Bool {
                if let sinceDate, record.time < sinceDate { return false }
                guard let keyIDs else { return true }
                return keyIDs.contains { id in record.keyARN == id || record.keyARN?.hasSuffix("/" + id) == true }
            }
            var last: Int64 = 0
            let first = try reader.records(after: 0)
            last = first.last?.sequence ?? 0
            var run = PoolRun()
            for (_, record) in first.filter({ selected($0.record) }).suffix(limit) { emit(record, &run) }
            run.flush()
            fflush(nil)
            while follow {
                Thread.sleep(forTimeInterval: 0.5)
                let more = try reader.records(after: last)
                guard let newest = more.last else { continue }
                last = newest.sequence
                for (_, record) in more where selected(record) { emit(record, &run) }
                run.flush()
                fflush(nil)
            }
        }

        /// Consecutive key-pool records, collapsed into one line when grouping.
        struct PoolRun {
            var count = 0, failed = 0
            var first: AuditRecord?, last: AuditRecord?

            /// Whether `record` continues this run (same principal, operation and key): the
            /// marker is the client's own claim, so a run never mixes callers.
            func continues(_ record: AuditRecord) -> Bool {
                guard let first else { return true }
                return first.principal == record.principal && first.operation == record.operation && first.keyARN == record.keyARN
            }

            mutating func add(_ record: AuditRecord) {
                if !continues(record) { flush() }
                if first == nil { first = record }
                last = record
                count += 1
                if record.errorCode != nil { failed += 1 }
            }

            mutating func flush() {
                guard let first, let last else { return }
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                print("\(formatter.string(from: first.time))  key pool: \(count) \(first.operation) by \(first.principal) on \(first.keyARN ?? "-") until \(formatter.string(from: last.time))\(failed > 0 ? ", \(failed) refused" : "")")
                self = PoolRun()
            }
        }

        func emit(_ record: AuditRecord, _ run: inout PoolRun) {
            if Self.isPoolRecord(record) {
                switch keyPool {
                case .hide: return
                case .group: run.add(record); return
                case .show: break
                }
            }
            run.flush()
            print(line(record))
        }

        func line(_ record: AuditRecord) -> String {
            switch format {
            case .json: return String(decoding: record.canonicalJSON, as: UTF8.self)
            case .text:
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                var parts = [formatter.string(from: record.time), record.operation, record.principal, record.keyARN ?? "-",
                             record.errorCode ?? "ok"]
                if let context = record.encryptionContext, !context.isEmpty {
                    parts.append("context " + context.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ","))
                }
                if let note = record.note { parts.append("(\(note))") }
                return parts.joined(separator: "  ")
            }
        }
    }
}
