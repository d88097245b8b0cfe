import Foundation
import KMSFSCrypto

/// The parameters of an AWS query-protocol request (IAM, STS): a form-encoded body,
/// `Action=CreateUser&Version=2010-05-08&UserName=alice&Tags.member.1.Key=team...`.
///
/// Like ``Members``, each accessor marks what it read and ``finish()`` refuses the rest, so an
/// option kmsd does not implement is an error rather than silently ignored.
struct QueryParameters {
    let action: String
    private var values: [String: String] = [:]
    private var read: Set<String> = ["Action", "Version"]

    /// Parses a form body; a parameter given twice, or bytes that do not decode, are refused.
    init(body: [UInt8]) throws(WireError) {
        var values: [String: String] = [:]
        for pair in body.split(separator: UInt8(ascii: "&")) where !pair.isEmpty {
            let parts = pair.split(separator: UInt8(ascii: "="), maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), let value = Self.decode(parts.count > 1 ? parts[1] : []) else {
                throw Self.malformed("the request body is not valid form encoding")
            }
            guard values.updateValue(value, forKey: name) == nil else { throw Self.malformed("parameter \(name.prefix(64)) is given twice") }
        }
        guard let action = values["Action"] else { throw Self.malformed("the request names no Action") }
        self.action = action
        self.values = values
    }

    static func malformed(_ message: String) -> WireError { WireError(type: .malformedQueryString, message: message) }

    /// Percent-decoding with `+` as a space, as HTML forms encode.
    static func decode(_ bytes: ArraySlice<UInt8>) -> String? {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var i = bytes.startIndex
        while i < bytes.endIndex {
            let byte = bytes[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < bytes.endIndex, let high = hexDigitValue(bytes[i + 1]), let low = hexDigitValue(bytes[i + 2]) else { return nil }
                out.append(high << 4 | low)
                i += 3
            } else {
                out.append(byte == UInt8(ascii: "+") ? UInt8(ascii: " ") : byte)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    mutating func string(_ name: String) -> String? {
        read.insert(name)
        return values[name]
    }

    mutating func required(_ name: String) throws(WireError) -> String {
        guard let value = string(name), !value.isEmpty else {
            throw WireError(type: .iamValidation, message: "1 validation error detected: Value null at '\(name.prefix(1).lowercased() + name.dropFirst())' failed to satisfy constraint: Member must not be null")
        }
        return value
    }

    mutating func int(_ name: String) throws(WireError) -> Int? {
        guard let text = string(name) else { return nil }
        guard let value = Int(text) else { throw WireError(type: .iamValidation, message: "\(name) must be an integer") }
        return value
    }

    /// `Name.member.N.Key` / `Name.member.N.Value` pairs (IAM's tags), in order of N.
    mutating func tags(_ name: String) throws(WireError) -> [(String, String)] {
        var result: [(String, String)] = []
        var index = 1
        while let key = string("\(name).member.\(index).Key") {
            guard let value = string("\(name).member.\(index).Value") else {
                throw WireError(type: .iamValidation, message: "\(name).member.\(index) has a Key and no Value")
            }
            result.append((key, value))
            index += 1
        }
        return result
    }

    /// Paging and path parameters of list calls: every list is answered whole (IsTruncated
    /// false) and every entity has the path `/`, which satisfies any page size and the prefix `/`.
    mutating func accept(_ names: String...) { for name in names { read.insert(name) } }

    func finish() throws(WireError) {
        let unknown = values.keys.filter { !read.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw WireError(type: .iamValidation, message: "\(action) does not take \(unknown.map { "'\($0.prefix(64))'" }.joined(separator: ", "))")
        }
    }
}
