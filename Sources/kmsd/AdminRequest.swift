import Foundation
import KMSEngine
import KMSFSCrypto

/// One `kmsd admin` command, declared once: the CLI runs it on the store itself when no kmsd
/// serves the store, or sends it over the admin socket to the kmsd that does (the store admits
/// one process, and that process's engine must see the change at once).
enum AdminRequest: Codable {
    case createAccount(id: String?, name: String)
    case listAccounts
    case createAccessKey(account: String, user: String?, accessKeyID: String?, secretAccessKey: String?)
    case listAccessKeys(account: String?)
    case revokeAccessKey(String)
    /// The seed's text travels, not its path: a sandboxed kmsd may not see the operator's files.
    case seed(path: String, yaml: String)
    /// The new root key travels too (64 hex digits), for the same reason; the socket is 0600
    /// and its requests are wiped after use.
    case rotateRootKey(newKeyHex: String)

    /// Runs the command on `engine` and returns what the CLI prints.
    func perform(on engine: KMSEngine) throws -> String {
        switch self {
        case let .createAccount(id, name):
            let account = try engine.createAccount(accountID: id, name: name)
            return "account: \(account.accountID) (\(account.name))"
        case .listAccounts:
            return engine.listAccounts().map { "\($0.accountID)\t\($0.name)" }.joined(separator: "\n")
        case let .createAccessKey(account, user, accessKeyID, secretAccessKey):
            let (key, created) = try engine.createAccessKey(
                account: account, userName: user, accessKeyID: accessKeyID, secretAccessKey: secretAccessKey, createAccount: true)
            var lines: [String] = []
            if let created { lines.append("account: \(created.accountID) created") }
            lines.append("access key id: \(key.record.accessKeyID)")
            if secretAccessKey == nil { lines.append("secret access key: \(key.secretAccessKey)") }
            lines.append("principal: \(key.record.principal)")
            return lines.joined(separator: "\n")
        case let .listAccessKeys(account):
            return engine.listAccessKeys(account: account).map { "\($0.accessKeyID)\t\($0.account)\t\($0.principal)" }
                .joined(separator: "\n")
        case let .revokeAccessKey(id):
            try engine.revokeAccessKey(id)
            return "revoked \(id)"
        case let .seed(path, yaml):
            return try engine.applySeed(SeedFile.parse(yaml, path: path), path: path)
        case let .rotateRootKey(hex):
            var bytes = Array(hex.utf8)
            defer { bytes.withUnsafeMutableBytes(SecretBytes.wipe) }
            let rotation = try engine.rotateRootKey(to: RootKey(decoding: &bytes))
            return """
                root key rotated from \(rotation.from) to \(rotation.to): \(rotation.materialVersions) key material versions, \(rotation.accessKeys) access key secrets and \
                \(rotation.customKeyStores) custom key store secrets sealed again; every record authenticated again; the audit \
                trail continues under the new key from record \(rotation.firstRecord)
                """
        }
    }
}
