import ArgumentParser
import Foundation
import KMSEngine
import KMSStore

/// `kmsd backup`: a consistent copy of every row of a store, taken beside a running kmsd.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy a key store (SQLite or PostgreSQL) to a backup file; works while kmsd runs.",
        discussion: """
        One consistent snapshot, read without the store's lock. The file (created 0600, never over \
        another) holds what the store holds — material sealed under the root key, records with \
        their MACs, the audit trail — and is useless without the root key, which it does not hold: \
        keep the root key's own copy apart. kmsd restore makes a new store from it, on either backend.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .shortAndLong, help: "The backup file to create.") var output: String

    func run() throws {
        do {
            let summary = try StoreBackup.backup(storeOptions.location, to: output)
            print("kmsd backup: \(storeOptions.location) → \(output): \(summary)")
        } catch {
            throw ValidationError("\(error)")
        }
    }
}

/// `kmsd restore`: a new store from a backup.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Make a new key store (SQLite or PostgreSQL) from a kmsd backup file.",
        discussion: """
        The store must be new: an SQLite file that does not exist, or a PostgreSQL database without \
        a key store. It opens under the root key the backup's store had, and verifies as that store \
        did. A backup is older than the store it came from: an audit anchor written since names \
        records the restored trail lacks, and kmsd refuses the store (a rollback) until the anchor \
        is moved aside and made again (kmsd admin anchor-audit) — a decision for the operator, \
        since every key made after the backup is gone with it.
        """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(name: .shortAndLong, help: "The backup file (kmsd backup).") var input: String

    func run() throws {
        do {
            let summary = try StoreBackup.restore(input, into: storeOptions.location)
            print("kmsd restore: \(input) → \(storeOptions.location): \(summary)")
        } catch {
            throw ValidationError("\(error)")
        }
    }
}
