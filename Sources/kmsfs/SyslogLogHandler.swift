import Logging
#if canImport(Glibc)
import Glibc
#endif

/// A background mount has no terminal: its log goes to syslog (the journal on systemd machines),
/// as gocryptfs's does. Messages name inodes, chunks and keys, never data or key material.
struct SyslogLogHandler: LogHandler {
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static func bootstrap(identifier: String) {
        // openlog keeps the pointer: the identifier must outlive the process's logging.
        openlog(strdup(identifier), LOG_PID, LOG_DAEMON)
        LoggingSystem.bootstrap { _ in SyslogLogHandler() }
    }

    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        let suffix = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        withVaList(["\(event.message)\(suffix)"]) { vsyslog(Self.priority(event.level), "%s", $0) }
    }

    static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return LOG_DEBUG
        case .info: return LOG_INFO
        case .notice: return LOG_NOTICE
        case .warning: return LOG_WARNING
        case .error: return LOG_ERR
        case .critical: return LOG_CRIT
        }
    }
}
