import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real PostgreSQL server for the tests (Debian's postgresql package, which scripts/setup
/// installs): a cluster made with initdb in a temporary directory, listening on a Unix socket
/// there only, started once per test process and stopped when it exits. Each test gets a
/// database of its own (``newDatabase()``).
///
/// PostgreSQL refuses to run as root: under root the cluster is the `postgres` user's.
package final class PostgresServer: Sendable {
    package static let shared: Result<PostgresServer, PostgresServerError> = Result { () throws(PostgresServerError) in try PostgresServer() }

    package let directory: String
    private let binaries: String

    private init() throws(PostgresServerError) {
        let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []).compactMap(Int.init).sorted()
        guard let version = versions.last else {
            throw PostgresServerError("PostgreSQL is not installed (/usr/lib/postgresql/*/bin): run scripts/setup")
        }
        binaries = "/usr/lib/postgresql/\(version)/bin"
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsfs-pg-\(getpid())").path
        try? FileManager.default.removeItem(atPath: directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        } catch {
            throw PostgresServerError("cannot make \(directory): \(error)")
        }
        if getuid() == 0, let owner = getpwnam("postgres") { chown(directory, owner.pointee.pw_uid, owner.pointee.pw_gid) }
        try run("initdb", ["-D", directory + "/data", "-A", "trust", "-U", "kmsd", "--no-sync", "-E", "UTF8"])
        // fsync off: the tests check what the store does, not what the disk keeps.
        try run("pg_ctl", ["-D", directory + "/data", "-l", directory + "/log", "-w", "start",
                           "-o", "-k \(directory) -c listen_addresses='' -c fsync=off -c max_connections=200"])
        Self.stopAtExit = (binaries + "/pg_ctl", directory)
        atexit {
            guard let (pgCtl, directory) = PostgresServer.stopAtExit else { return }
            let data = directory + "/data"
            _ = PostgresServer.spawn(pgCtl, ["-D", data, "-m", "immediate", "-w", "stop"], output: "/dev/null")
            try? FileManager.default.removeItem(atPath: directory)
        }
    }

    nonisolated(unsafe) private static var stopAtExit: (String, String)?

    /// The libpq URI of database `name` on this server.
    package func url(_ name: String) -> String { "postgresql://kmsd@/\(name)?host=\(directory)" }

    /// A new, empty database; its URI.
    package func newDatabase() throws(PostgresServerError) -> String {
        let name = "kmsd_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try run("createdb", ["-h", directory, "-U", "kmsd", name])
        return url(name)
    }

    /// Removes database `url` names (connections to it are ended first).
    package func dropDatabase(_ url: String) {
        guard let name = url.split(separator: "/").last?.split(separator: "?").first else { return }
        try? run("dropdb", ["-h", directory, "-U", "kmsd", "--force", String(name)])
    }

    /// Runs a PostgreSQL program, as `postgres` under root.
    private func run(_ program: String, _ arguments: [String]) throws(PostgresServerError) {
        let outputPath = directory + "/\(program).out"
        let status = Self.spawn(binaries + "/" + program, arguments, output: outputPath)
        guard status == 0 else {
            let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
            throw PostgresServerError("\(program) \(arguments.joined(separator: " ")) exited with \(status): \(text)")
        }
    }

    /// posix_spawn and waitpid, not Foundation's Process: the server that pg_ctl starts outlives
    /// it, and Process did not see pg_ctl end (it stayed a zombie). Output goes to a file (a
    /// pipe would be held open by the server for ever). Returns the exit status (-1: not run).
    static func spawn(_ executable: String, _ arguments: [String], output: String) -> Int32 {
        let argv = getuid() == 0 ? ["/usr/sbin/runuser", "-u", "postgres", "--", executable] + arguments : [executable] + arguments
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var cArguments = argv.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, argv[0], &actions, nil, &cArguments, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : -1
    }
}

package struct PostgresServerError: Error, CustomStringConvertible {
    package let description: String
    init(_ description: String) { self.description = description }
}
