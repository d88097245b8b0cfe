/// A value in or out of SQL, as both backends give and take it.
public enum SQLValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    public var text: String? { if case let .text(value) = self { value } else { nil } }
    public var integer: Int64? { if case let .integer(value) = self { value } else { nil } }
    public var real: Double? {
        switch self {
        case let .real(value): value
        case let .integer(value): Double(value)
        default: nil
        }
    }
    public var blob: [UInt8]? { if case let .blob(value) = self { value } else { nil } }
}

/// One result row. A column the row lacks reads as NULL rather than trapping: what a server
/// answers (a PostgreSQL server may be anyone's, over a network) decides nothing about which
/// positions the store may read.
public struct SQLRow: RandomAccessCollection, Sendable, Equatable {
    public let values: [SQLValue]
    public init(_ values: [SQLValue]) { self.values = values }
    public var startIndex: Int { 0 }
    public var endIndex: Int { values.count }
    public subscript(position: Int) -> SQLValue { values.indices.contains(position) ? values[position] : .null }
}
