import ArgumentParser
import Foundation
import KMSEngine

/// `kmsd admin`: accounts, access keys, seeds. While kmsd serves the store, the command goes to
/// it through its admin socket; otherwise it opens the store itself (with the root key).
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage accounts and access keys, or apply a seed file (through a running kmsd, or on the store).",
        subcommands: [CreateAccount.self, ListAccounts.self, CreateAccessKey.self, ListAccessKeys.self, RevokeAccessKey.self, ApplySeed.self,
                      AnchorAudit.self]
    )

    struct CreateAccount: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "A 12-digit account ID; random if omitted.") var id: String?
        @Option(help: "A name for the account.") var name: String
        func run() throws {
            print(try storeOptions.runAdmin(.createAccount(id: id, name: name)))
        }
    }

    struct ListAccounts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var storeOptions: StoreOptions
        func run() throws {
            try printLines(storeOptions.runAdmin(.listAccounts))
        }
    }

    struct CreateAccessKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create an access key; the secret is printed once.",
            discussion: """
            Generated unless given: --access-key-id and --secret-access-key take credentials chosen by the \
            operator (migrating existing ones, CI fixtures) of AWS's shape — an ID of 16 to 128 letters, \
            digits and underscores, a secret of 40 characters of A-Z, a-z, 0-9, + and /. The account may be \
            any 12-digit ID: it is created if it does not exist.
            """)
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "The account the key belongs to (12 digits; created if missing).") var account: String
        @Option(help: "An IAM-style user name; the key then acts as arn:aws:iam::<account>:user/<name>.") var user: String?
        @Option(help: "Use this access key ID instead of a generated one.") var accessKeyID: String?
        @Option(help: "Use this secret instead of a generated one.") var secretAccessKey: String?
        func validate() throws {
            try validateGivenCredentials(accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)
        }
        func run() throws {
            print(try storeOptions.runAdmin(
                .createAccessKey(account: account, user: user, accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)))
        }
    }

    struct ListAccessKeys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List access keys (never their secrets).")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "Only this account's keys.") var account: String?
        func run() throws {
            try printLines(storeOptions.runAdmin(.listAccessKeys(account: account)))
        }
    }

    struct RevokeAccessKey: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an access key.")
        @OptionGroup var storeOptions: StoreOptions
        @Argument(help: "The access key ID.") var accessKeyID: String
        func run() throws {
            print(try storeOptions.runAdmin(.revokeAccessKey(accessKeyID)))
        }
    }

    struct ApplySeed: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "seed", abstract: "Apply a seed file to the store now, as `kmsd serve --seed` does at start.")
        @OptionGroup var storeOptions: StoreOptions
        @Argument(help: "The seed file (YAML).") var file: String
        func run() throws {
            print(try storeOptions.runAdmin(.seed(path: file, yaml: SeedFile.read(file))))
        }
    }

    struct AnchorAudit: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "anchor-audit",
            abstract: "Create the audit anchor of a store that has none yet (its first start with this build).",
            discussion: """
                kmsd keeps the audit head outside the store (--audit-anchor, default STORE.audit-anchor) and refuses a \
                store with a trail but no anchor, as an anchor removed to hide a rollback. Run this once for a store made \
                before anchors existed; it anchors the trail as it is now.
                """)
        @OptionGroup var storeOptions: StoreOptions
        func run() throws {
            guard try AdminSocket.send(.listAccounts, to: storeOptions.adminSocketPath, storeOwner: storeOptions.storeOwner) == nil else {
                throw CommandFailure("kmsd is serving this store, so its audit trail is anchored already")
            }
            let engine = try storeOptions.openEngine(createAnchor: true)
            try engine.flushAudit()
            print("audit anchor: \(storeOptions.anchor)")
        }
    }
}

/// Prints a listing; an empty one prints nothing (not an empty line).
private func printLines(_ text: String) {
    if !text.isEmpty { print(text) }
}
