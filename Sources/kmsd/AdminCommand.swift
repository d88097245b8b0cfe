import ArgumentParser
import Foundation
import KMSEngine

/// `kmsd admin`: accounts and access keys. Works on the store directly, so kmsd must not be
/// serving the same store at the time (the store refuses a second process).
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage accounts and access keys (with kmsd stopped).",
        subcommands: [CreateAccount.self, ListAccounts.self, CreateAccessKey.self, ListAccessKeys.self, RevokeAccessKey.self]
    )

    struct CreateAccount: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an account.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "A 12-digit account ID; random if omitted.") var id: String?
        @Option(help: "A name for the account.") var name: String
        func run() throws {
            let account = try storeOptions.openEngine().createAccount(accountID: id, name: name)
            print("account: \(account.accountID) (\(account.name))")
        }
    }

    struct ListAccounts: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List accounts.")
        @OptionGroup var storeOptions: StoreOptions
        func run() throws {
            for account in try storeOptions.openEngine().listAccounts() { print("\(account.accountID)\t\(account.name)") }
        }
    }

    struct CreateAccessKey: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create an access key; the secret is printed once.")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "The account the key belongs to.") var account: String
        @Option(help: "An IAM-style user name; the key then acts as arn:aws:iam::<account>:user/<name>.") var user: String?
        @Option(help: "Use this access key ID instead of a generated one.") var accessKeyID: String?
        @Option(help: "Use this secret instead of a generated one.") var secretAccessKey: String?
        func run() throws {
            let key = try storeOptions.openEngine().createAccessKey(account: account, userName: user,
                                                                   accessKeyID: accessKeyID, secretAccessKey: secretAccessKey)
            print("access key id: \(key.record.accessKeyID)")
            print("secret access key: \(key.secretAccessKey)")
            print("principal: \(key.record.principal)")
        }
    }

    struct ListAccessKeys: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List access keys (never their secrets).")
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "Only this account's keys.") var account: String?
        func run() throws {
            for key in try storeOptions.openEngine().listAccessKeys(account: account) {
                print("\(key.accessKeyID)\t\(key.account)\t\(key.principal)")
            }
        }
    }

    struct RevokeAccessKey: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete an access key.")
        @OptionGroup var storeOptions: StoreOptions
        @Argument(help: "The access key ID.") var accessKeyID: String
        func run() throws {
            try storeOptions.openEngine().revokeAccessKey(accessKeyID)
            print("revoked \(accessKeyID)")
        }
    }
}
