import Foundation
@testable import KMSClient
import KMSEngine
import KMSFSCrypto
import Synchronization
import Testing

/// The remote client against real kmsd and moto processes on loopback.
@Suite(.serialized) struct HTTPClientTests {
    static func client(_ endpoint: String, _ id: String, _ secret: String, attempts: Int = 4, delay: TimeInterval = 0.05) throws -> HTTPKMSClient {
        var options = HTTPKMSClient.Options()
        options.maximumAttempts = attempts
        options.maximumThrottledAttempts = attempts
        options.baseDelay = delay
        options.timeout = 5
        return try HTTPKMSClient(configuration: AWSConfiguration(endpoint: endpoint, region: "us-east-1", accessKeyID: id, secretAccessKey: secret),
                                 options: options)
    }

    static func createKey(_ client: HTTPKMSClient) throws -> String {
        try client.call("CreateKey", []).object("KeyMetadata").string("KeyId")
    }

    @Test func roundTripsOverTCPAndUnixSocket() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        for endpoint in ["http://127.0.0.1:\(kmsd.port)", "unix://\(kmsd.socketPath)"] {
            let client = try Self.client(endpoint, kmsd.accessKeyID, kmsd.secret)
            let key = try Self.createKey(client)
            let context = ["kmsfs:volume": "v", "kmsfs:file": "01"]
            let dataKey = try client.generateDataKey(keyID: key, context: context)
            #expect(dataKey.plaintext.count == 32 && dataKey.keyARN.hasSuffix(key))
            #expect(try client.decrypt(ciphertextBlob: dataKey.ciphertextBlob, context: context, keyID: nil) == dataKey.plaintext)
            let other = try Self.createKey(client)
            let moved = try client.reEncrypt(ciphertextBlob: dataKey.ciphertextBlob, sourceContext: context, destinationKeyID: other, destinationContext: [:])
            #expect(try client.decrypt(ciphertextBlob: moved, context: [:], keyID: other) == dataKey.plaintext)
            #expect(try client.describeKey(keyID: key).keyState == "Enabled")
            let sealed = try client.encrypt(keyID: key, plaintext: SecretBytes(copying: [7, 7]), context: [:])
            #expect(try client.decrypt(ciphertextBlob: sealed, context: [:], keyID: key) == SecretBytes(copying: [7, 7]))
            // Many calls reuse kept-alive connections.
            for _ in 0..<50 { _ = try client.generateDataKey(keyID: key, context: context) }
        }
    }

    /// https with a self-signed certificate: trusted through a given bundle, refused otherwise
    /// (and not retried: another attempt cannot fix a certificate).
    @Test func tlsWithAGivenBundle() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kmsd-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let cert = directory.appendingPathComponent("tls.crt").path, key = directory.appendingPathComponent("tls.key").path
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                             "-out", cert, "-days", "2", "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"]
        openssl.standardError = FileHandle.nullDevice
        try openssl.run()
        openssl.waitUntilExit()
        let tlsPort = freePort()
        let kmsd = try KmsdProcess(extraArguments: ["--listen", "tls://127.0.0.1:\(tlsPort)", "--tls-certificate", cert, "--tls-key", key])
        defer { kmsd.cleanUp() }
        var options = HTTPKMSClient.Options()
        options.caBundle = cert
        let trusting = try HTTPKMSClient(configuration: AWSConfiguration(endpoint: "https://127.0.0.1:\(tlsPort)", region: "us-east-1",
                                                                         accessKeyID: kmsd.accessKeyID, secretAccessKey: kmsd.secret), options: options)
        let keyID = try Self.createKey(trusting)
        let dataKey = try trusting.generateDataKey(keyID: keyID, context: [:])
        #expect(try trusting.decrypt(ciphertextBlob: dataKey.ciphertextBlob, context: [:], keyID: nil) == dataKey.plaintext)
        let untrusting = try Self.client("https://127.0.0.1:\(tlsPort)", kmsd.accessKeyID, kmsd.secret, attempts: 4, delay: 0.01)
        let refused = try #require(throws: KMSClientError.self) { try untrusting.describeKey(keyID: keyID) }
        #expect(refused.kind == .unreachable && refused.message.contains("certificate"))
        #expect(!refused.message.contains("attempts"))  // not retried
    }

    @Test func errorClassesFromKmsd() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        let client = try Self.client("http://127.0.0.1:\(kmsd.port)", kmsd.accessKeyID, kmsd.secret)
        let key = try Self.createKey(client)
        let blob = try client.generateDataKey(keyID: key, context: ["f": "1"]).ciphertextBlob

        let badSecret = try #require(throws: KMSClientError.self) {
            try Self.client("http://127.0.0.1:\(kmsd.port)", kmsd.accessKeyID, "wrong-wrong-wrong-wrong").describeKey(keyID: key)
        }
        #expect(badSecret.kind == .accessDenied && badSecret.code == "InvalidSignatureException" && badSecret.errno == EACCES)
        let unknown = try #require(throws: KMSClientError.self) { try Self.client("http://127.0.0.1:\(kmsd.port)", "AKIANOBODY0000000000", "x").describeKey(keyID: key) }
        #expect(unknown.kind == .accessDenied)
        let missing = try #require(throws: KMSClientError.self) { try client.describeKey(keyID: "alias/missing") }
        #expect(missing.kind == .notFound)
        let badContext = try #require(throws: KMSClientError.self) { try client.decrypt(ciphertextBlob: blob, context: ["f": "2"], keyID: nil) }
        #expect(badContext.kind == .invalidCiphertext && badContext.errno == EIO)
        _ = try client.call("DisableKey", [("KeyId", .string(key))])
        let disabled = try #require(throws: KMSClientError.self) { try client.decrypt(ciphertextBlob: blob, context: ["f": "1"], keyID: nil) }
        #expect(disabled.kind == .keyUnusable(state: "Disabled") && disabled.errno == EACCES)
        _ = try client.call("EnableKey", [("KeyId", .string(key))])
        _ = try client.call("ScheduleKeyDeletion", [("KeyId", .string(key)), ("PendingWindowInDays", .int(7))])
        let pending = try #require(throws: KMSClientError.self) { try client.generateDataKey(keyID: key, context: [:]) }
        #expect(pending.kind == .keyUnusable(state: "PendingDeletion"))
    }

    @Test func worksAgainstMoto() throws {
        let moto = try MotoProcess()
        defer { withExtendedLifetime(moto) {} }
        let client = try Self.client("http://127.0.0.1:\(moto.port)", "testing", "testing")
        let key = try Self.createKey(client)
        let dataKey = try client.generateDataKey(keyID: key, context: ["a": "b"])
        #expect(try client.decrypt(ciphertextBlob: dataKey.ciphertextBlob, context: ["a": "b"], keyID: nil) == dataKey.plaintext)
        let missing = try #require(throws: KMSClientError.self) { try client.describeKey(keyID: "alias/none") }
        #expect(missing.kind == .notFound)
    }

    /// kmsd stopped and started again while the client retries: the call succeeds once it is back.
    @Test func survivesAServerRestart() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        // 30 attempts with capped, jittered backoff: well over 20 s, for a debug kmsd starting on a loaded machine.
        let client = try Self.client("http://127.0.0.1:\(kmsd.port)", kmsd.accessKeyID, kmsd.secret, attempts: 30, delay: 0.2)
        let key = try Self.createKey(client)
        _ = try client.generateDataKey(keyID: key, context: [:])
        kmsd.stop()
        let restarting = Mutex(false)
        let started = DispatchSemaphore(value: 0)
        let restarter = Thread {
            usleep(400_000)
            restarting.withLock { $0 = true }  // before start(): kmsd answers as soon as it binds
            try? kmsd.start()
            started.signal()
        }
        restarter.start()
        let dataKey = try client.generateDataKey(keyID: key, context: [:])
        #expect(dataKey.plaintext.count == 32)
        #expect(restarting.withLock { $0 })
        #expect(started.wait(timeout: .now() + 60) == .success)  // start() has returned before the clean-up stops kmsd
    }

    @Test func unreachableAfterRetriesIsEIO() throws {
        let client = try Self.client("http://127.0.0.1:\(freePort())", "A", "S", attempts: 3, delay: 0.01)
        let error = try #require(throws: KMSClientError.self) { try client.describeKey(keyID: "k") }
        #expect(error.kind == .unreachable && error.errno == EIO && error.message.contains("after 3 attempts"))
    }

    /// A proxy in front of kmsd answers 503, or ThrottlingException, three times, then passes
    /// requests through: the client retries with backoff, re-signs, and kmsd answers.
    @Test(arguments: [
        (503, #"{"__type":"ServiceUnavailableException","message":"busy"}"#),
        (400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
    ])
    func retriesTransientFailures(status: Int, body: String) throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        let direct = try Self.client("http://127.0.0.1:\(kmsd.port)", kmsd.accessKeyID, kmsd.secret)
        let key = try Self.createKey(direct)
        let proxy = CannedServer(responses: [(status, body), (status, body), (status, body)], forwardTo: kmsd.port)
        defer { withExtendedLifetime(proxy) {} }
        let client = try Self.client("http://127.0.0.1:\(proxy.port)", kmsd.accessKeyID, kmsd.secret, attempts: 5, delay: 0.01)
        #expect(try client.describeKey(keyID: key).keyState == "Enabled")
        #expect(proxy.requests.count == 4)
        // With fewer attempts than failures, the error says so (EIO).
        let failing = CannedServer(responses: [(status, body)])
        defer { withExtendedLifetime(failing) {} }
        let impatient = try Self.client("http://127.0.0.1:\(failing.port)", kmsd.accessKeyID, kmsd.secret, attempts: 2, delay: 0.01)
        let error = try #require(throws: KMSClientError.self) { try impatient.describeKey(keyID: key) }
        #expect(error.kind == .unreachable && error.errno == EIO && failing.requests.count == 2)
    }

    /// Several endpoints: a dead one (nothing listening) or one answering 503 is left for the
    /// next, within the call's retries, and later calls stay there; throttling is retried on the
    /// same endpoint, never moved.
    @Test func failsOverToTheNextEndpoint() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        let live = "http://127.0.0.1:\(kmsd.port)"
        let key = try Self.createKey(Self.client(live, kmsd.accessKeyID, kmsd.secret))

        let dead = try Self.client("http://127.0.0.1:\(freePort());\(live)", kmsd.accessKeyID, kmsd.secret, attempts: 2, delay: 0.01)
        #expect(try dead.describeKey(keyID: key).keyState == "Enabled")

        let busy = CannedServer(responses: [(503, #"{"__type":"ServiceUnavailableException","message":"down"}"#)])
        defer { withExtendedLifetime(busy) {} }
        let client = try Self.client("http://127.0.0.1:\(busy.port),\(live)", kmsd.accessKeyID, kmsd.secret, attempts: 2, delay: 0.01)
        for _ in 0..<5 { _ = try client.generateDataKey(keyID: key, context: [:]) }
        #expect(busy.requests.count == 1)

        let throttling = CannedServer(responses: [(400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)], forwardTo: kmsd.port)
        let spare = CannedServer(responses: [(503, "{}")])
        defer { withExtendedLifetime((throttling, spare)) {} }
        let patient = try Self.client("http://127.0.0.1:\(throttling.port),http://127.0.0.1:\(spare.port)", kmsd.accessKeyID, kmsd.secret,
                                      attempts: 3, delay: 0.01)
        #expect(try patient.describeKey(keyID: key).keyState == "Enabled")
        #expect(throttling.requests.count == 2 && spare.requests.count == 0)

        // Every endpoint down: the error names them all, after the attempts.
        let nowhere = try Self.client("http://127.0.0.1:\(freePort()),http://127.0.0.1:\(freePort())", "A", "S", attempts: 3, delay: 0.01)
        let error = try #require(throws: KMSClientError.self) { try nowhere.describeKey(keyID: key) }
        #expect(error.kind == .unreachable && error.message.contains("after 3 attempts"))
        #expect(throws: KMSClientError.self) { try Self.client("http://a:1,,http://b:2", "A", "S") }
    }

    /// Throttling has a budget of its own, larger than for failures: a quota recovers by itself.
    @Test func throttlingIsRetriedLongerThanFailures() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        let key = try Self.createKey(Self.client("http://127.0.0.1:\(kmsd.port)", kmsd.accessKeyID, kmsd.secret))
        let throttled = (400, #"{"__type":"ThrottlingException","message":"Rate exceeded"}"#)
        let proxy = CannedServer(responses: Array(repeating: throttled, count: 6), forwardTo: kmsd.port)
        defer { withExtendedLifetime(proxy) {} }
        var options = HTTPKMSClient.Options()
        options.baseDelay = 0.01
        options.maximumDelay = 0.05
        #expect(options.maximumAttempts == 4 && options.maximumThrottledAttempts == 20)
        let client = try HTTPKMSClient(configuration: AWSConfiguration(endpoint: "http://127.0.0.1:\(proxy.port)", region: "us-east-1",
                                                                      accessKeyID: kmsd.accessKeyID, secretAccessKey: kmsd.secret),
                                       options: options)
        #expect(try client.describeKey(keyID: key).keyState == "Enabled")
        #expect(proxy.requests.count == 7)
    }

    /// Credentials and endpoint from a profile in a temporary HOME, end to end against kmsd.
    @Test func profileCredentialsEndToEnd() throws {
        let kmsd = try KmsdProcess()
        defer { kmsd.cleanUp() }
        let home = FileManager.default.temporaryDirectory.appendingPathComponent("home-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: home.appendingPathComponent(".aws"), withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: home) }
        try "[ci]\naws_access_key_id = \(kmsd.accessKeyID)\naws_secret_access_key = \(kmsd.secret)\n"
            .write(to: home.appendingPathComponent(".aws/credentials"), atomically: true, encoding: .utf8)
        try "[profile ci]\nregion = us-east-1\nendpoint_url = unix://\(kmsd.socketPath)\n"
            .write(to: home.appendingPathComponent(".aws/config"), atomically: true, encoding: .utf8)
        let configuration = try AWSConfiguration.resolve(environment: ["AWS_PROFILE": "ci"], home: home.path)
        let client = try HTTPKMSClient(configuration: configuration)
        let key = try Self.createKey(client)
        #expect(try client.describeKey(keyID: key).keyARN.hasPrefix("arn:aws:kms:us-east-1:111122223333:key/"))
    }

    /// Lengths from the network are checked before use: a negative, huge or malformed
    /// Content-Length or chunk size is an error of the client (EIO after the retries), never a
    /// trap of the process that holds the mount.
    @Test(arguments: [
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n{}",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\n{}\r\n0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\n{}\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ])
    func hostileLengthsAreErrors(answer: String) throws {
        let server = CannedServer(responses: [(0, answer)])
        defer { withExtendedLifetime(server) {} }
        let client = try Self.client("http://127.0.0.1:\(server.port)", "A", "S", attempts: 2, delay: 0.01)
        let error = try #require(throws: KMSClientError.self) { try client.describeKey(keyID: "k") }
        #expect(error.errno == EIO)
    }

    @Test func clientErrorsAreNotRetried() throws {
        let server = CannedServer(responses: [(400, #"{"__type":"ValidationException","message":"no"}"#)])
        defer { withExtendedLifetime(server) {} }
        let client = try Self.client("http://127.0.0.1:\(server.port)", "A", "S", attempts: 5, delay: 0.01)
        let error = try #require(throws: KMSClientError.self) { try client.describeKey(keyID: "k") }
        #expect(error.kind == .invalidRequest && error.code == "ValidationException")
        #expect(server.requests.count == 1)
    }
}
