import ArgumentParser
import KMSAuthorization
import Dispatch
import Foundation
import KMSFSCrypto
import KMSEngine
import KMSMetrics
import KMSServer

/// `kmsd serve`: serve the AWS KMS API until SIGTERM or SIGINT.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the AWS KMS JSON API on TCP and Unix-socket listeners."
    )

    @OptionGroup var storeOptions: StoreOptions

    @Option(name: .customLong("listen"), help: """
        A listener: tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH[?mode=0660], with &policy=FILE (or ?policy=FILE) \
        for an endpoint policy that limits what it serves. Repeat for several; default tcp://127.0.0.1:8080.
        """)
    var listeners: [String] = []

    @Option(help: "TLS certificate chain (PEM) for tls:// listeners.")
    var tlsCertificate: String?

    @Option(help: "TLS private key (PEM) for tls:// listeners.")
    var tlsKey: String?

    @Option(help: "Largest request body accepted, in bytes (default 1048576).")
    var maxBodyBytes: Int?

    @Option(help: "Close a connection whose client sends nothing for this many seconds, unless an answer is pending (default 30).")
    var idleTimeout: Int64?

    @Option(help: "Close a connection whose request has not arrived whole this many seconds after its first byte (default 10).")
    var requestTimeout: Int64?

    @Option(help: "Connections open at once, over every listener; more are closed when accepted (default 1000).")
    var maxConnections: Int?

    @Option(name: .customLong("host-name"), help: "Serve only requests signed for this host name (the Host header, port aside); may repeat. Default: any.")
    var hostNames: [String] = []

    @Option(help: "A seed file (YAML): accounts, access keys, keys and aliases made at start if missing (config: seed).")
    var seed: String?

    @Option(help: """
        A request quota per account, CLASS=RATE (requests per second; may repeat): cryptographic \
        (Encrypt, Decrypt, GenerateDataKey, Sign, ... shared), data-key-pair, management (every \
        other operation, shared). Over it: ThrottlingException. Default: none.
        """)
    var quota: [String] = []

    @Option(help: """
        Serve Prometheus metrics (GET /metrics) on unix:/PATH (created 0600) or 127.0.0.1:PORT \
        (loopback only): requests by operation and outcome, latency histograms, throttled requests, \
        connections, keys by state, the audit backlog, store transactions and errors.
        """)
    var metrics: String?

    @Flag(help: """
        Wait while another kmsd serves the store, then take over: load it and start listening \
        when that kmsd's writer lock is released (it stopped, or its process or session died). \
        For PostgreSQL stores (an advisory lock), and SQLite stores on one machine (a file lock).
        """)
    var standby = false

    @Flag(help: """
        Serve a PostgreSQL store together with other kmsd instances started with --shared: every \
        instance answers every request. Changes are conditional writes on the store's generation; \
        each instance loads what another changed within 100 ms, and refuses requests (500, so \
        clients try another) when it could not confirm its state for 1 s. docs/KMS.md.
        """)
    var shared = false

    @Option(help: """
        Replicate multi-Region keys with peer deployments (other kmsd services with their own \
        stores, over mutually authenticated TLS): a YAML file of the configuration's peering: \
        section (listen, certificate, key, ca, peers with name, endpoint and regions). docs/KMS.md.
        """)
    var peering: String?

    @OptionGroup(title: "Development mode") var devOptions: DevOptions

    func validate() throws {
        if shared && standby { throw ValidationError("--shared instances all serve; --standby waits for a store's one writer: choose one") }
        guard devOptions.dev else { return }
        if shared { throw ValidationError("--dev makes its own store: it cannot be --shared") }
        let storeFlags = [storeOptions.config, storeOptions.storeFlag, storeOptions.rootKeyFile, storeOptions.rootKeyCredential]
        guard storeFlags.allSatisfy({ $0 == nil }), storeOptions.rootKeyFD == nil, listeners.isEmpty, tlsCertificate == nil, tlsKey == nil else {
            throw ValidationError("--dev makes its own store and listens on 127.0.0.1 only: it takes no --config, --store, root key, --listen or TLS option")
        }
        guard (0...65535).contains(devOptions.port) else { throw ValidationError("--port is 0 to 65535") }
    }

    func run() throws {
        try ProcessHardening.disableCoreDumps()
        // Before any metric is made: they bind to the backend when made.
        MetricsBackend.start()
        let metricsAddress = try metrics.map { text in
            guard let address = MetricsEndpoint.Address(text) else {
                throw ValidationError("--metrics takes unix:/PATH or 127.0.0.1:PORT (loopback only): \(text)")
            }
            return address
        }
        // Key material (cached unsealed per key version) and the root key in a locked heap: 4 MiB
        // holds about 100 000 32-byte secrets.
        switch ProcessHardening.lockKeyMemory(byteCount: 4 << 20) {
        case let .locked(byteCount): print("kmsd: key memory: \(byteCount >> 20) MiB locked, out of core dumps")
        case let .unlocked(reason): print("kmsd: WARNING: key memory not locked, keys may reach swap: \(reason)")
        }
        let file = devOptions.dev ? nil : try storeOptions.configFile()
        let listenerTexts = devOptions.dev ? ["tcp://127.0.0.1:\(devOptions.port)"]
            : !listeners.isEmpty ? listeners : (file?.listen ?? ["tcp://127.0.0.1:8080"])
        let certificate = tlsCertificate ?? file?.tls?.certificate, key = tlsKey ?? file?.tls?.key
        let parsed = try listenerTexts.map { try Self.parse($0, certificate: certificate, key: key) }
        var configuration = ServerConfiguration(listeners: parsed.map(\.0))
        for (index, (listener, path)) in parsed.enumerated() {
            guard let path else { continue }
            configuration.endpointPolicies[index] = try Self.endpointPolicy(path)
            print("kmsd: \(listener) serves what its endpoint policy \(path) allows")
        }
        configuration.maximumBodyBytes = maxBodyBytes ?? file?.maxBodyBytes ?? (1 << 20)
        configuration.idleTimeoutSeconds = idleTimeout ?? file?.idleTimeout ?? 30
        configuration.requestTimeoutSeconds = max(1, requestTimeout ?? file?.requestTimeout ?? 10)
        configuration.maximumConnections = max(1, maxConnections ?? file?.maxConnections ?? 1000)
        configuration.hostNames = hostNames.isEmpty ? (file?.hostNames ?? []) : hostNames
        // Every connection is a descriptor: the soft limit goes to the hard one, and a limit
        // below the connection limit is said (kmsd would stop accepting before refusing).
        var descriptors = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &descriptors) == 0 {
            descriptors.rlim_cur = descriptors.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &descriptors)
            if descriptors.rlim_cur < rlim_t(configuration.maximumConnections + 64) {
                print("kmsd: WARNING: \(descriptors.rlim_cur) descriptors for up to \(configuration.maximumConnections) connections: raise LimitNOFILE or lower --max-connections")
            }
        }
        let dev = devOptions.dev ? try DevSession.start(devOptions) : nil
        defer { dev?.remove() }
        if let dev {
            configuration.serveTestReset = true
            let known = dev.accessKeyID
            configuration.onUnknownAccessKey = { unknown in
                print("kmsd: dev: a request signed with access key \(unknown), which this dev server does not know (it knows \(known)): UnrecognizedClientException")
                fflush(nil)
            }
        }
        if standby && dev == nil {
            print("kmsd: standby: waiting for the writer lock of \(storeOptions.location) (another kmsd serves it)")
            fflush(nil)
        }
        let engine = try dev?.engine ?? storeOptions.openEngine(scheduler: true, waitForWriter: standby, shared: shared) { reason in
            // Fencing: the lock went with the session, and a standby may be writing already.
            // Answering on from memory could hand out what it has just changed (a disabled key).
            print("kmsd: lost the key store's session (\(reason)): stopping, so that a standby takes over (or, --shared, the other instances serve)")
            fflush(nil)
            // At once, without exit handlers: they would tear down OpenSSL and the runtime
            // under threads still answering or following the store.
            Glibc._exit(75)
        }
        if engine.openedUnderNextRootKey {
            print("kmsd: WARNING: the key store's root key was rotated to the next root key: install that as the root key (--root-key-*)")
            fflush(nil)
        }
        engine.onFollowProblem { problem in
            print(problem.map { "kmsd: cannot follow the shared key store (requests are refused once its state is 1 s old): \($0)" }
                  ?? "kmsd: following the shared key store again")
            fflush(nil)
        }
        if let seed = seed ?? file?.seed { print(try engine.applySeed(from: seed)) }
        var quotas = RequestQuotas()
        for text in quota {
            do { try quotas.set(text) } catch { throw ValidationError(error.message) }
        }
        engine.setQuotas(quotas)
        for (kind, rate) in quotas.rates.sorted(by: { $0.key.rawValue < $1.key.rawValue }) {
            print("kmsd: quota: \(kind.rawValue) \(rate) requests per second per account")
        }
        // Dev mode's store is its own and short-lived: nobody administers it from outside.
        // Without its admin socket kmsd still serves (a directory it cannot bind in, a socket
        // planted by another user): `kmsd admin` then needs kmsd stopped.
        var admin: AdminSocket?
        if dev == nil {
            do {
                admin = try AdminSocket(path: storeOptions.adminSocketPath, engine: engine)
                print("kmsd: admin socket \(storeOptions.adminSocketPath)")
            } catch {
                print("kmsd: WARNING: no admin socket (\(error)); `kmsd admin` works only while kmsd is stopped")
            }
        }
        defer { admin?.stop() }
        engine.onPendingDeletionUse { use in
            print("kmsd: WARNING: \(use.operation) by \(use.principal) used \(use.keyARN), which is pending deletion "
                  + "(use #\(use.count) since start; cancel the deletion if the key is still needed)")
            fflush(nil)
        }
        let server = try KMSServer(engine: engine, configuration: configuration)
        for address in server.boundAddresses { print("kmsd: listening on \(address)") }
        let peerServer = try (peering.map(PeeringSettings.load) ?? file?.peering)?.start(engine: engine)
        let metricsEndpoint = try metricsAddress.map { address in
            let endpoint = try MetricsEndpoint(address) { [engine, server] in Self.metricsText(engine: engine, server: server) }
            print("kmsd: metrics on \(metrics ?? "")")
            return endpoint
        }
        defer { metricsEndpoint?.close() }
        if let dev, let endpoint = server.boundAddresses.first { dev.announce(endpoint: endpoint, account: devOptions.account) }
        print("kmsd: ready")
        fflush(nil)

        // SIGTERM/SIGINT: stop accepting, finish in-flight requests, flush the audit, exit 0.
        waitForTermination()
        print("kmsd: shutting down")
        peerServer?.shutdown()
        server.shutdown()
        engine.stopBackgroundWork()
        do { try engine.flushAudit() } catch {
            print("kmsd: WARNING: \(engine.auditBacklog) audit records could not be written to the key store: \(error)")
        }
        print("kmsd: stopped")
    }

    /// The registry's text, then what is read when scraped: connections, keys by state, the
    /// audit backlog.
    static func metricsText(engine: KMSEngine, server: KMSServer) -> String {
        var text = MetricsBackend.registry.emitToString()
        text += MetricsBackend.line("kmsd_connections", "Connections open now.", server.openConnections)
        text += "# HELP kmsd_keys Keys by state.\n# TYPE kmsd_keys gauge\n"
        for (state, count) in engine.keyCountsByState().sorted(by: { $0.key < $1.key }) {
            text += "kmsd_keys{state=\"\(state)\"} \(count)\n"
        }
        text += MetricsBackend.line("kmsd_audit_backlog", "Audit records in memory, not yet in the store.", engine.auditBacklog)
        return text
    }

    /// Parses a listener, `SCHEME://ADDRESS[?mode=0660][&policy=/path/endpoint-policy.json]`, and
    /// returns it with the path of its endpoint policy, if it names one.
    static func parse(_ text: String, certificate: String?, key: String?) throws -> (ServerConfiguration.Listener, policy: String?) {
        var address = Substring(text), mode: UInt16?, policy: String?
        if let question = text.firstIndex(of: "?") {
            address = text[..<question]
            for parameter in text[text.index(after: question)...].split(separator: "&") {
                if parameter.hasPrefix("mode="), let value = UInt16(parameter.dropFirst(5), radix: 8), text.hasPrefix("unix://") {
                    mode = value
                } else if parameter.hasPrefix("policy="), parameter.count > 7 {
                    policy = String(parameter.dropFirst(7))
                } else {
                    throw ValidationError("unknown listener option \(parameter) in \(text): mode=0660 (unix only), policy=PATH")
                }
            }
        }
        if address.hasPrefix("tcp://") || address.hasPrefix("tls://") {
            let rest = address.dropFirst(6)
            guard let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]), (0...65535).contains(port) else {
                throw ValidationError("a TCP or TLS listener is tcp://HOST:PORT or tls://HOST:PORT: \(text)")
            }
            let host = String(rest[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            guard address.hasPrefix("tls://") else { return (.tcp(host: host, port: port), policy) }
            guard let certificate, let key else {
                throw ValidationError("\(text) needs --tls-certificate and --tls-key (or tls: in the configuration file)")
            }
            return (.tls(host: host, port: port, certificate: certificate, key: key), policy)
        }
        if address.hasPrefix("unix://") {
            let path = String(address.dropFirst(7))
            guard path.hasPrefix("/") else { throw ValidationError("a Unix socket path must be absolute: \(text)") }
            return (.unix(path: path, mode: mode ?? 0o660), policy)
        }
        throw ValidationError("unknown listener \(text): use tcp://HOST:PORT, tls://HOST:PORT or unix:///PATH")
    }

    /// An endpoint policy file: a resource policy (it names principals), read once at start.
    static func endpointPolicy(_ path: String) throws -> Policy {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ValidationError("cannot read the endpoint policy \(path)")
        }
        do {
            return try Policy(json: Array(data), kind: .resource)
        } catch {
            throw ValidationError("the endpoint policy \(path) is not valid: \(error.reason)")
        }
    }
}
