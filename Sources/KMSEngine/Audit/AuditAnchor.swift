import Foundation
import KMSStore

/// The audit head kept outside the store: whoever can write the store but has no root key can
/// cut records off the end of the trail and put back an older head (from a copy, or from the
/// WAL), leaving a chain that verifies. The anchor — the head, MACed under the root key, in a
/// file of its own — is rewritten after every commit; at open, the store must still hold the
/// record the anchor names, with the MAC it names. Put it where the store's writers cannot
/// write (kmsd's `--audit-anchor`); beside the store it still catches edits of the store alone.
struct AuditAnchor: Sendable {
    let path: String

    /// The anchored head bytes (``AuditChain/head(sequence:mac:)``), or nil if there is no anchor yet.
    func read() throws -> [UInt8]? {
        guard let data = FileManager.default.contents(atPath: path) else {
            if FileManager.default.fileExists(atPath: path) { throw StoreError("cannot read the audit anchor \(path)") }
            return nil
        }
        return Array(data)
    }

    /// Replaces the anchor atomically (a new file, created 0600, renamed over the old one), so a
    /// crash leaves the old anchor or the new one, never a torn one. Not fsync'ed: after a crash
    /// the anchor may lag the store (still consistent), never lead it — the store commits first.
    func write(_ head: [UInt8]) throws {
        let temporary = path + ".new"
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot write the audit anchor \(temporary): \(String(cString: strerror(errno)))") }
        let written = head.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
        close(fd)
        guard written == head.count, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw StoreError("cannot write the audit anchor \(path): \(String(cString: strerror(errno)))")
        }
    }
}
