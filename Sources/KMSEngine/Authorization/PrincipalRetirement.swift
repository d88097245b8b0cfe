import KMSJSON

/// What AWS does to policies that name a user or role when it is deleted: the principal's ARN is
/// replaced by its unique ID (`AIDA…`, `AROA…`). A user or role made again under the same name
/// has another unique ID, so it does not inherit what was granted to the one deleted — and the
/// policy shows, as AWS's does, that it names someone who no longer exists.
enum PrincipalRetirement {
    /// `policy` with every `Principal`/`NotPrincipal` entry equal to `arn` replaced by `uniqueID`,
    /// or nil if it names `arn` nowhere (or is not JSON: left as it is). Compared on the parsed
    /// strings, not the text: JSON may spell the ARN with escapes (`user\/alice`).
    static func retiring(_ arn: String, as uniqueID: String, in policy: String) -> String? {
        guard case let .object(members)? = try? JSONParser.parse(Array(policy.utf8)) else { return nil }
        var changed = false
        func principal(_ value: JSONValue) -> JSONValue {
            switch value {
            case .string(arn):
                changed = true
                return .string(uniqueID)
            case let .array(items): return .array(items.map(principal))
            case let .object(entries): return .object(entries.map { ($0.0, $0.0 == "AWS" ? principal($0.1) : $0.1) })
            default: return value
            }
        }
        func statement(_ value: JSONValue) -> JSONValue {
            guard case let .object(entries) = value else { return value }
            return .object(entries.map { ($0.0, $0.0 == "Principal" || $0.0 == "NotPrincipal" ? principal($0.1) : $0.1) })
        }
        let rewritten = JSONValue.object(members.map { name, value in
            guard name == "Statement" else { return (name, value) }
            if case let .array(statements) = value { return (name, .array(statements.map(statement))) }
            return (name, statement(value))
        })
        return changed ? String(decoding: rewritten.serialized, as: UTF8.self) : nil
    }
}
