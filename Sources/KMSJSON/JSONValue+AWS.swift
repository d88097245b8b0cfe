import Foundation

/// The AWS JSON protocols' shapes for values that JSON has no type for, shared by the server's
/// wire and the client so both encode them one way.
extension JSONValue {
    /// A blob: base64 text.
    public static func blob(_ bytes: [UInt8]) -> JSONValue { .string(Data(bytes).base64EncodedString()) }

    /// A map of strings (an encryption context, tags by key), its members in key order so that
    /// equal maps serialize to equal bytes.
    public static func stringMap(_ map: [String: String]) -> JSONValue {
        .object(map.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })
    }
}
