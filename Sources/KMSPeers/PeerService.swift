import KMSEngine
import KMSFSCrypto
import KMSJSON

/// The server side of the peer protocol without transport: one message in (already proved to
/// come from a configured peer by its certificate), the engine's answer out.
public struct PeerService: Sendable {
    public struct Answer: Sendable {
        public var status: Int
        public var body: [UInt8]
        public init(status: Int, body: [UInt8]) {
            self.status = status
            self.body = body
        }
    }

    let engine: KMSEngine
    public let directory: PeerDirectory

    public init(engine: KMSEngine, directory: PeerDirectory) {
        self.engine = engine
        self.directory = directory
    }

    /// Answers `POST /kmsd-peer/v1/messages` from the peer whose certificate names are `names`.
    public func handle(method: String, path: String, certificateNames: [String], body: SecretBytes) -> Answer {
        guard method == "POST", path == PeerProtocol.path else {
            return Self.error(404, "UnsupportedOperationException", "the peer protocol has one route: POST \(PeerProtocol.path)")
        }
        guard let peer = directory.peer(named: certificateNames) else {
            return Self.error(403, "AccessDeniedException", "the client certificate names no configured peer")
        }
        var bytes = body.withUnsafeBytes { Array($0) }
        defer { bytes.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        do {
            try engine.receivePeerMessage(bytes, from: peer)
            return Answer(status: 200, body: Array("{}".utf8))
        } catch let error as KMSError {
            let status = error.code == .internalError ? 500 : error.code == .accessDenied ? 403 : 400
            return Self.error(status, error.code.rawValue, error.message)
        } catch {
            return Self.error(500, "KMSInternalException", "\(error)")
        }
    }

    static func error(_ status: Int, _ name: String, _ message: String) -> Answer {
        Answer(status: status, body: JSONValue.object([("__type", .string(name)), ("message", .string(message))]).serialized)
    }
}
