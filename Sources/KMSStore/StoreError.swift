/// A failure of the key store itself (I/O, corruption, a wrong root key, a lost database
/// connection). The engine reports it to callers as KMSInternalException; the message goes to
/// the operator's log.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}
