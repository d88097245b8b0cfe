import ArgumentParser
import Foundation
import KMSEngine
import KMSFSCrypto

/// `kmsd admin`: accounts, access keys, seeds. While kmsd serves the store, the command goes to
/// it through its admin socket; otherwise it opens the store itself (with the root key).
struct AdminCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "Manage accounts and access keys, or apply a seed file (through a running kmsd, or on the store).",
        subcommands: [CreateAccount.self, ListAccounts.self, CreateAccessKey.self, ListAccessKeys.self, RevokeAccessKey.self, ApplySeed.self,
                      AnchorAudit.self, RotateRootKey.self]
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

extension AdminCommand {
    struct RotateRootKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-root-key",
            abstract: "Seal everything in the store again under a new root key (through a running kmsd, or on the store).",
            discussion: """
                One transaction re-seals every key's material and every secret under the new key, gives every record its \
                MAC under it, and starts the audit chain's segment under it; interrupted, it leaves the store under the old \
                key, and running it again finishes it. KeyMaterialIds do not change, and the audit trail verifies whole \
                under the new key. The new key's file is made (mode 0600, a new random key) if it does not exist.

                Afterwards only the new key opens the store: install it as the root key (--root-key-*) before kmsd \
                restarts. Instances given it as --next-root-key-* (the other instances of a shared store, a standby) take \
                the rotation up as it happens; instances without it stop serving and say why. Backups made before the \
                rotation stay under the old key.
                """)
        @OptionGroup var storeOptions: StoreOptions
        @Option(help: "The new root key's file (32 raw bytes or 64 hex digits); made if it does not exist.")
        var newRootKeyFile: String

        func run() throws {
            let key = try Self.loadOrCreate(newRootKeyFile)
            var hex = key.hexEncoded()
            defer { hex.withUnsafeMutableBytes(SecretBytes.wipe) }
            print(try storeOptions.runAdmin(.rotateRootKey(newKeyHex: String(decoding: hex.dropLast(), as: UTF8.self))))
            print("install \(newRootKeyFile) as the store's root key (--root-key-file or its credential) before kmsd restarts")
        }

        /// The key in `path`, or a new one written there first: created 0600 and synced, so the
        /// key the store is sealed under is on disk before the store is. An existing file must be
        /// a regular file of this user (or root) that no one else may read or write: whoever
        /// could write it would choose the store's root key, whoever could read it would have it.
        static func loadOrCreate(_ path: String) throws -> RootKey {
            // Opened once, not followed, and checked on what was opened: a name swapped between
            // a check and a read cannot put another file's key in.
            let existing = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
            if existing >= 0 {
                defer { close(existing) }
                var info = stat()
                guard fstat(existing, &info) == 0, info.st_mode & S_IFMT == S_IFREG else {
                    throw CommandFailure("\(path) is not a regular file: give the key file itself")
                }
                guard info.st_uid == geteuid() || info.st_uid == 0, info.st_mode & 0o077 == 0 else {
                    throw CommandFailure("\(path) has mode 0\(String(info.st_mode & 0o7777, radix: 8)) and owner \(info.st_uid): "
                                         + "a root key file must be this user's (or root's) with mode 0600 or 0400")
                }
                return try RootKey(loading: .fileDescriptor(existing))
            }
            guard errno == ENOENT else {
                throw CommandFailure("cannot open \(path): \(String(cString: strerror(errno)))\(errno == ELOOP ? " (a symbolic link: give the key file itself)" : "")")
            }
            let key = try RootKey.generate()
            var hex = key.hexEncoded()
            defer { hex.withUnsafeMutableBytes(SecretBytes.wipe) }
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw CommandFailure("cannot create \(path): \(String(cString: strerror(errno)))") }
            let written = hex.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd) == 0
            close(fd)
            guard written == hex.count, synced else {
                unlink(path)
                throw CommandFailure("cannot write the new root key to \(path)")
            }
            let directory = (path as NSString).deletingLastPathComponent
            let directoryFD = open(directory.isEmpty ? "." : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if directoryFD >= 0 {
                fsync(directoryFD)
                close(directoryFD)
            }
            print("new root key: \(path) (mode 0600)")
            return key
        }
    }
}

/// Prints a listing; an empty one prints nothing (not an empty line).
private func printLines(_ text: String) {
    if !text.isEmpty { print(text) }
}
