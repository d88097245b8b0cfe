/// Checks of request members against AWS's constraints, with AWS's messages.
enum Validate {
    static func length(_ value: String, _ member: String, _ range: ClosedRange<Int>) throws(KMSError) {
        guard range.contains(value.count) else {
            throw KMSError.constraint(value.count > 64 ? String(value.prefix(64)) + "…" : value, member: member,
                                      "Member must have length \(range.lowerBound == 0 ? "less than or equal to \(range.upperBound)" : "between \(range.lowerBound) and \(range.upperBound)")")
        }
    }

    /// A sensitive or binary member's length (a plaintext, a blob): AWS names the member but never its value, and
    /// says which bound was crossed.
    static func sensitiveLength(_ count: Int, member: String, _ range: ClosedRange<Int>) throws(KMSError) {
        let bound = count < range.lowerBound ? "greater than or equal to \(range.lowerBound)"
            : count > range.upperBound ? "less than or equal to \(range.upperBound)" : nil
        guard let bound else { return }
        throw KMSError(.validation, "1 validation error detected: Value at '\(member)' failed to satisfy constraint: Member must have length \(bound)")
    }

    /// A bare key ID as AWS accepts one: a UUID, or a multi-Region key's `mrk-` and 32 hex digits.
    /// Anything else is refused as "Invalid keyId" before any lookup, as AWS does.
    static func isWellFormedKeyID(_ id: String) -> Bool {
        let bytes = Array(id.utf8)
        func hex(_ byte: UInt8) -> Bool { (48...57).contains(byte) || (97...102).contains(byte) || (65...70).contains(byte) }
        guard bytes.count == 36 else { return false }
        if id.hasPrefix("mrk-") { return bytes[4...].allSatisfy(hex) }
        return bytes.indices.allSatisfy { [8, 13, 18, 23].contains($0) ? bytes[$0] == UInt8(ascii: "-") : hex(bytes[$0]) }
    }

    /// A Region name as AWS's models constrain it (`us-east-1`, `ap-southeast-2`, `us-gov-west-1`).
    static func region(_ value: String, _ member: String) throws(KMSError) {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        let words = parts.dropLast().allSatisfy { !$0.isEmpty && $0.allSatisfy { ("a"..."z").contains($0) } }
        guard (1...32).contains(value.utf8.count), (3...4).contains(parts.count), words, let last = parts.last, !last.isEmpty,
              last.allSatisfy({ ("0"..."9").contains($0) }) else {
            throw KMSError.constraint(value.count > 64 ? String(value.prefix(64)) + "…" : value, member: member,
                                      "Member must satisfy regular expression pattern: ^([a-z]+-){2,3}\\d+$")
        }
    }

    static func range(_ value: Int, _ member: String, _ range: ClosedRange<Int>) throws(KMSError) {
        guard value >= range.lowerBound else {
            throw KMSError.constraint(value, member: member, "Member must have value greater than or equal to \(range.lowerBound)")
        }
        guard value <= range.upperBound else {
            throw KMSError.constraint(value, member: member, "Member must have value less than or equal to \(range.upperBound)")
        }
    }

    static func limit(_ limit: Int?) throws(KMSError) -> Int {
        guard let limit else { return 100 }
        try range(limit, "limit", 1...1000)
        return limit
    }

    /// Alias names: `alias/` then AWS's characters, 1–256 in all; `alias/aws/` is AWS's own. The
    /// checks and their words are AWS's, in AWS's order: prefix, reserved, colon, pattern.
    static func aliasName(_ name: String, allowReserved: Bool = false) throws(KMSError) {
        guard (1...256).contains(name.count) else {
            throw KMSError(.validation, "1 validation error detected: Value at 'aliasName' failed to satisfy constraint: Member must have length between 1 and 256")
        }
        guard name.hasPrefix("alias/") else {
            throw KMSError(.validation, name.contains("/") ? "Invalid identifier"
                : #"Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"#)
        }
        if !allowReserved && name.hasPrefix("alias/aws/") {
            throw KMSError(.notAuthorized, "")
        }
        // The pattern allows ':', the service does not (AWS: "... contains invalid characters for an alias").
        if name.contains(":") { throw KMSError(.validation, "\(name) contains invalid characters for an alias") }
        let allowed = name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || "/_-".unicodeScalars.contains($0)
        }
        guard allowed, name.count > 6 else {
            throw KMSError(.validation, "1 validation error detected: Value '\(name)' at 'aliasName' failed to satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$")
        }
    }

    static func tags(_ tags: [Tag]) throws(KMSError) {
        guard tags.count <= KeyRecord.maximumTags else { throw KMSError(.limitExceeded, "A key can have at most \(KeyRecord.maximumTags) tags") }
        var seen = Set<String>()
        for tag in tags {
            guard (1...128).contains(tag.tagKey.count), tag.tagValue.count <= 256 else {
                throw KMSError(.tag, "Tag keys must have 1 to 128 characters and tag values at most 256")
            }
            guard !tag.tagKey.lowercased().hasPrefix("aws:") else {
                throw KMSError(.tag, "Tag keys that begin with aws: are reserved")
            }
            guard seen.insert(tag.tagKey).inserted else { throw KMSError(.tag, "Duplicate tag key \(tag.tagKey)") }
        }
    }

    /// A key ID: a lowercase UUID, as AWS makes them.
    static func keyID(_ id: String) throws(KMSError) {
        let parts = id.split(separator: "-", omittingEmptySubsequences: false).map(\.count)
        guard parts == [8, 4, 4, 4, 12], id.allSatisfy({ $0 == "-" || $0.isHexDigit && !$0.isUppercase }) else {
            throw KMSError(.validation, "A key ID is a lowercase UUID, like 1234abcd-12ab-34cd-56ef-1234567890ab: \(id)")
        }
    }

    /// An AWS account ID: 12 digits.
    static func accountID(_ id: String) throws(KMSError) {
        guard id.count == 12, id.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw KMSError(.validation, "An account ID is 12 digits: \(id)")
        }
    }

    /// IAM's constraint on access key IDs: 16 to 128 word characters ([\\w]+).
    static func accessKeyID(_ id: String) throws(KMSError) {
        guard (16...128).contains(id.count), id.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }) else {
            throw KMSError(.validation, "An access key ID is 16 to 128 letters, digits and underscores (IAM's [\\w]+), like AKIAIOSFODNN7EXAMPLE")
        }
    }

    /// Any credential SigV4 can carry: 1 to 128 printable ASCII characters without spaces; an
    /// access key ID (which the Authorization header carries) also without its separators
    /// (`/`, `,`, `=`).
    static func signableCredential(_ text: String, what: String, inHeader: Bool) throws(KMSError) {
        let separators: String = inHeader ? "/,=" : ""
        guard (1...128).contains(text.count), text.allSatisfy({ $0.isASCII && ($0.asciiValue ?? 0) > 0x20 && $0 != "\u{7f}" && !separators.contains($0) }) else {
            throw KMSError(.validation, "A \(what) is 1 to 128 printable characters without spaces\(inHeader ? ", /, , or =" : "")")
        }
    }

    /// The shape of every secret access key AWS issues: 40 characters of the base64 alphabet.
    static func secretAccessKey(_ secret: String) throws(KMSError) {
        guard secret.count == 40, secret.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "+" || $0 == "/") }) else {
            throw KMSError(.validation, "A secret access key is 40 characters of A-Z, a-z, 0-9, + and /, like AWS's")
        }
    }

    /// IAM user names: 1 to 64 of letters, digits and +=,.@_-.
    static func userName(_ name: String) throws(KMSError) { try iamName(name, "user name", 64, code: .validation) }

    /// IAM names (users, roles: 64; policies: 128; role session names: 2–64) of the characters IAM allows.
    static func iamName(_ name: String, _ what: String, _ maximum: Int, minimum: Int = 1, code: KMSError.Code = .iamValidation) throws(KMSError) {
        guard (minimum...maximum).contains(name.count), name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "+=,.@_-".contains($0)) }) else {
            throw KMSError(code, "A \(what) is \(minimum) to \(maximum) of the characters IAM allows (letters, digits, +=,.@_-): '\(name.prefix(128))'")
        }
    }

    static func encryptionContext(_ context: EncryptionContext) throws(KMSError) {
        for (key, value) in context where key.isEmpty || key.utf8.count > 8192 || value.utf8.count > 8192 {
            throw KMSError(.validation, "Encryption context keys must be non-empty, and keys and values at most 8192 bytes")
        }
    }
}

/// Paging through a sorted list with opaque markers.
enum Paging {
    /// The page after `marker`: markers are the sort key of the last item returned.
    static func page<T>(_ items: [T], key: (T) -> String, limit: Int?, marker: String?) throws(KMSError) -> (page: [T], nextMarker: String?) {
        let limit = try Validate.limit(limit)
        var start = 0
        if let marker {
            guard let decoded = decode(marker) else { throw KMSError(.invalidMarker, "Invalid marker \(marker)") }
            start = items.firstIndex { key($0) > decoded } ?? items.count
        }
        let page = Array(items[start..<min(items.count, start + limit)])
        let more = start + limit < items.count
        return (page, more ? encode(key(page[page.count - 1])) : nil)
    }

    private static func encode(_ key: String) -> String { "m1:" + key }
    private static func decode(_ marker: String) -> String? {
        marker.hasPrefix("m1:") && marker.count > 3 ? String(marker.dropFirst(3)) : nil
    }
}
