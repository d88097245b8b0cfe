/// A JSON value as the AWS JSON 1.1 protocol carries it.
///
/// Numbers keep their text so that an integer member can tell `10` from `10.5` and `1e400`;
/// booleans are never numbers. Objects keep member order as received (the last duplicate wins on
/// lookup, as JSON parsers commonly do).
public enum JSONValue: Equatable, Sendable {
    case null
    case bool(Bool)
    case number(String)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.number(a), .number(b)): return a == b
        case let (.string(a), .string(b)): return a == b
        case let (.array(a), .array(b)): return a == b
        case let (.object(a), .object(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: return false
        }
    }

    public static func int(_ value: Int) -> JSONValue { .number(String(value)) }

    /// Seconds since 1970 with millisecond precision, as AWS JSON timestamps are sent.
    public static func timestamp(_ secondsSince1970: Double) -> JSONValue {
        // Saturating: a date far outside any calendar (a store or peer said so) must not trap.
        let scaled = (secondsSince1970 * 1000).rounded()
        let milliseconds = scaled.isNaN ? 0 : Int64(max(-9.2e18, min(9.2e18, scaled)))
        let whole = milliseconds / 1000, fraction = milliseconds % 1000
        return .number(fraction == 0 ? String(whole) : String(whole) + "." + String(fraction).leftPadded(3))
    }

    /// The JSON type's name, for error messages.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "array"
        case .object: return "object"
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: "0", count: width - count) + self }
}
