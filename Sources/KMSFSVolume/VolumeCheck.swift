import Foundation
import KMSClient
import KMSFSFormat

/// `kmsfs fsck`: every file of a backing directory read the way a mount reads it, chunk by chunk,
/// so that an operator learns after a crash (or a suspected tampering) which files and which
/// plaintext byte ranges will read as EIO — without reading the whole volume through a mount and
/// stopping at the first bad chunk of each file. Read-only: repairing means deciding which
/// bytes to give up, which is the owner's call.
public struct VolumeCheck {
    /// One file's problem. Paths are relative to the volume's root (plaintext, given the names).
    public enum Finding: Sendable, Equatable, CustomStringConvertible {
        /// The whole file reads as EIO: no usable key (attribute missing, malformed or another
        /// file's; key refused by the key service), header or size.
        case unreadable(path: String, reason: String)
        /// These plaintext byte ranges read as EIO, and so do reads that reach the end of the file
        /// when `failingEnd` is its size (its final chunk, which holds no bytes, fails); the rest
        /// of the file reads.
        case damaged(path: String, ranges: [Range<Int64>], failingEnd: Int64?)
        /// These plaintext byte ranges are holes: they read as zeros, unauthenticated.
        case holes(path: String, ranges: [Range<Int64>])

        public var description: String {
            switch self {
            case let .unreadable(path, reason): return "UNREADABLE \(path): \(reason)"
            case let .damaged(path, ranges, failingEnd):
                let parts = (ranges.isEmpty ? [] : ["bytes \(Self.text(ranges)) fail authentication"])
                    + (failingEnd.map { ["its end at byte \($0) fails authentication (reads that reach it fail)"] } ?? [])
                return "DAMAGED \(path): " + parts.joined(separator: "; ")
            case let .holes(path, ranges): return "HOLES \(path): bytes \(Self.text(ranges)) read as zeros (sparse, unauthenticated)"
            }
        }

        static func text(_ ranges: [Range<Int64>]) -> String {
            ranges.map { "\($0.lowerBound)-\($0.upperBound - 1)" }.joined(separator: ", ")
        }
    }

    public struct Report: Sendable {
        public var filesChecked = 0
        public var findings: [Finding] = []
        /// Whether every file reads whole (holes are not damage).
        public var isClean: Bool {
            !findings.contains { if case .holes = $0 { false } else { true } }
        }
    }

    let cipherDirectory: String
    let keys: FileKeys
    let holes: HolePolicy
    /// The volume's names: findings then name plaintext paths.
    let names: NameCipher?

    public init(cipherDirectory: String, keys: FileKeys, holes: HolePolicy, names: NameCipher? = nil) {
        self.cipherDirectory = cipherDirectory
        self.names = names
        self.keys = keys
        self.holes = holes
    }

    /// Checks every regular file under the backing directory, in name order.
    /// - Throws: the ``KMSClientError`` of an unreachable key service (nothing can be concluded
    ///   about the files then), or the error of a directory that cannot be listed.
    public func run() throws -> Report {
        var report = Report()
        var unexamined: [Finding] = []
        try VolumeFiles.forEachFile(in: cipherDirectory, names: names, failed: { unexamined.append(.unreadable(path: $0, reason: $1)) }) { entry in
            report.filesChecked += 1
            report.findings += try check(entry)
        }
        report.filesChecked += unexamined.count
        report.findings += unexamined
        return report
    }

    /// One file's findings: none when it reads whole and has no holes.
    func check(_ entry: VolumeFiles.Entry) throws -> [Finding] {
        let path = entry.path
        let fd = entry.open()
        guard fd >= 0 else { return [.unreadable(path: path, reason: String(cString: strerror(errno)))] }
        defer { close(fd) }
        let chunks: ChunkCheck
        do {
            chunks = try BackingFile.open(fd: fd, keys: keys, holes: holes).checkChunks()
        } catch let error as KMSClientError where error.kind == .unreachable {
            throw error
        } catch {
            return [.unreadable(path: path, reason: "\(error)")]
        }
        var findings: [Finding] = []
        if !chunks.failed.isEmpty {
            findings.append(.damaged(path: path, ranges: chunks.failedRanges, failingEnd: chunks.failingEnd))
        }
        if !chunks.holes.isEmpty { findings.append(.holes(path: path, ranges: chunks.holeRanges)) }
        return findings
    }
}
