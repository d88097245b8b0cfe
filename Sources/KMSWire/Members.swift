import Foundation
import KMSEngine
import KMSFSCrypto
import KMSJSON

/// The members of one request body, read with their AWS types.
///
/// Each accessor marks its member as read; ``finish()`` then refuses members the operation does
/// not take, so a typo or an unsupported option is an error instead of being silently ignored.
/// JSON `null` counts as absent, as in AWS's own parsers.
struct Members {
    let operation: String
    private var members: [String: JSONValue] = [:]
    private var read: Set<String> = []

    private init(operation: String) { self.operation = operation }

    init(operation: String, body: [UInt8]) throws(WireError) {
        self.operation = operation
        // An empty body is an empty request (some SDKs send none for operations without input).
        guard !body.isEmpty else { return }
        let value: JSONValue
        do {
            value = try JSONParser.parse(body)
        } catch {
            throw .serialization("The request body is not valid JSON: \(error)")
        }
        guard case let .object(pairs) = value else {
            throw .serialization("The request body must be a JSON object, not \(value.typeName)")
        }
        for (name, member) in pairs where member != .null { members[name] = member }
    }

    /// AWS's messages name members in lower camel case (`keyId`).
    private static func memberPath(_ name: String) -> String { name.prefix(1).lowercased() + name.dropFirst() }

    private mutating func take(_ name: String) -> JSONValue? {
        read.insert(name)
        return members[name]
    }

    private static func typeError(_ name: String, _ expected: String, _ value: JSONValue) -> WireError {
        .serialization("Member '\(name)' must be \(expected), not \(value.typeName)")
    }

    static func missing(_ name: String) -> WireError {
        .validation("1 validation error detected: Value null at '\(memberPath(name))' failed to satisfy constraint: Member must not be null")
    }

    /// A string member, if there is one, without marking it read (the quota's look at the key
    /// a request names, before the operation reads its members).
    func peekString(_ name: String) -> String? {
        guard case let .string(text)? = members[name] else { return nil }
        return text
    }

    mutating func string(_ name: String) throws(WireError) -> String? {
        guard let value = take(name) else { return nil }
        guard case let .string(text) = value else { throw Self.typeError(name, "a string", value) }
        return text
    }

    mutating func requiredString(_ name: String) throws(WireError) -> String {
        guard let text = try string(name) else { throw Self.missing(name) }
        return text
    }

    mutating func int(_ name: String) throws(WireError) -> Int? {
        guard let value = take(name) else { return nil }
        guard case let .number(text) = value else { throw Self.typeError(name, "an integer", value) }
        guard let number = Int(text) else {
            throw .serialization("Member '\(name)' must be an integer that fits 64 bits, not \(text)")
        }
        return number
    }

    /// A timestamp: seconds since 1970 as a JSON number, as the AWS JSON protocols send them.
    mutating func timestamp(_ name: String) throws(WireError) -> Date? {
        guard let value = take(name) else { return nil }
        guard case let .number(text) = value else { throw Self.typeError(name, "a timestamp (seconds since 1970)", value) }
        guard let seconds = Double(text), seconds.isFinite, abs(seconds) < 1e11 else {
            throw .serialization("Member '\(name)' must be a timestamp in seconds since 1970, not \(text)")
        }
        return Date(timeIntervalSince1970: seconds)
    }

    mutating func bool(_ name: String) throws(WireError) -> Bool? {
        guard let value = take(name) else { return nil }
        guard case let .bool(flag) = value else { throw Self.typeError(name, "a boolean", value) }
        return flag
    }

    mutating func blob(_ name: String) throws(WireError) -> [UInt8]? {
        guard let text = try string(name) else { return nil }
        guard let data = Data(base64Encoded: text) else {
            throw .serialization("Member '\(name)' is not valid base64")
        }
        return Array(data)
    }

    mutating func requiredBlob(_ name: String) throws(WireError) -> [UInt8] {
        guard let bytes = try blob(name) else { throw Self.missing(name) }
        return bytes
    }

    /// A blob that is secret (plaintext): decoded straight into ``SecretBytes``; the decoded
    /// temporary is wiped.
    mutating func requiredSecret(_ name: String) throws(WireError) -> SecretBytes {
        var bytes = try requiredBlob(name)
        return SecretBytes(wiping: &bytes)
    }

    mutating func stringMap(_ name: String) throws(WireError) -> [String: String]? {
        guard let value = take(name) else { return nil }
        guard case let .object(pairs) = value else { throw Self.typeError(name, "an object of strings", value) }
        var map: [String: String] = [:]
        for (key, member) in pairs {
            guard case let .string(text) = member else { throw Self.typeError("\(name).\(key)", "a string", member) }
            map[key] = text
        }
        return map
    }

    mutating func stringList(_ name: String) throws(WireError) -> [String]? {
        guard let value = take(name) else { return nil }
        guard case let .array(elements) = value else { throw Self.typeError(name, "an array of strings", value) }
        var list: [String] = []
        for element in elements {
            guard case let .string(text) = element else { throw Self.typeError(name + "[]", "a string", element) }
            list.append(text)
        }
        return list
    }

    mutating func tags(_ name: String) throws(WireError) -> [Tag]? {
        guard let value = take(name) else { return nil }
        guard case let .array(elements) = value else { throw Self.typeError(name, "an array of tags", value) }
        var tags: [Tag] = []
        for element in elements {
            guard case let .object(pairs) = element else { throw Self.typeError(name + "[]", "a tag object", element) }
            var key: String?, tagValue: String?
            for (member, field) in pairs {
                guard case let .string(text) = field else { throw Self.typeError("\(name)[].\(member)", "a string", field) }
                switch member {
                case "TagKey": key = text
                case "TagValue": tagValue = text
                default: throw .serialization("Unknown member '\(member)' in a tag")
                }
            }
            guard let key else { throw Self.missing("TagKey") }
            guard let tagValue else { throw Self.missing("TagValue") }
            tags.append(Tag(tagKey: key, tagValue: tagValue))
        }
        return tags
    }

    /// An enumeration member; a value outside the set is ValidationException, as AWS says it.
    mutating func enumeration<E: RawRepresentable & CaseIterable>(_ name: String, _: E.Type) throws(WireError) -> E? where E.RawValue == String {
        guard let text = try string(name) else { return nil }
        guard let value = E(rawValue: text) else {
            throw .validation("1 validation error detected: Value '\(text)' at '\(Self.memberPath(name))' failed to satisfy constraint: Member must satisfy enum value set: [\(E.allCases.map(\.rawValue).joined(separator: ", "))]")
        }
        return value
    }

    /// `GrantTokens`: checked (at most 10, each one this service issued). Grants are usable as
    /// soon as CreateGrant returns, so a valid token adds nothing to the decision.
    mutating func grantTokens() throws(WireError) {
        guard let tokens = try stringList("GrantTokens") else { return }
        do { try KMSEngine.validateGrantTokens(tokens) } catch { throw WireError(error) }
    }

    /// `DryRun`: the caller, marked when the request is a dry run.
    mutating func dryRun(_ caller: Caller) throws(WireError) -> Caller {
        guard try bool("DryRun") == true else { return caller }
        var dry = caller
        dry.dryRun = true
        return dry
    }

    /// A structure member, as its raw JSON object.
    mutating func object(_ name: String) throws(WireError) -> [(String, JSONValue)]? {
        guard let value = take(name) else { return nil }
        guard case let .object(pairs) = value else { throw Self.typeError(name, "an object", value) }
        return pairs
    }

    /// A structure member, read member by member (and finished) like a request.
    mutating func objectMembers(_ name: String) throws(WireError) -> Members? {
        guard let pairs = try object(name) else { return nil }
        var nested = Members(operation: "\(operation) \(name)")
        for (key, value) in pairs where value != .null { nested.members[key] = value }
        return nested
    }

    /// A sensitive string (a password, a secret access key): straight into ``SecretBytes``.
    mutating func secretString(_ name: String) throws(WireError) -> SecretBytes? {
        guard let text = try string(name) else { return nil }
        return SecretBytes(copying: Array(text.utf8))
    }

    /// Marks members as read without reading them: the members of an operation this service
    /// refuses as a whole (it answers what AWS would, not "does not take").
    mutating func accept(_ names: [String]) {
        for name in names { read.insert(name) }
    }

    /// Refuses members the operation did not read.
    func finish() throws(WireError) {
        let unknown = members.keys.filter { !read.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw .serialization("\(operation) does not take \(unknown.map { "'\($0)'" }.joined(separator: ", "))")
        }
    }
}
