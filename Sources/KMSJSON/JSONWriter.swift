/// Writes JSON: compact, members in the order given.
extension JSONValue {
    public var serialized: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256)
        out.appendJSON(self)
        return out
    }
}

extension Array where Element == UInt8 {
    mutating func appendJSON(_ value: JSONValue) {
        switch value {
        case .null: append(contentsOf: "null".utf8)
        case let .bool(flag): append(contentsOf: (flag ? "true" : "false").utf8)
        case let .number(text): append(contentsOf: text.utf8)
        case let .string(text): appendJSONString(text)
        case let .array(elements):
            append(UInt8(ascii: "["))
            for (i, element) in elements.enumerated() {
                if i > 0 { append(UInt8(ascii: ",")) }
                appendJSON(element)
            }
            append(UInt8(ascii: "]"))
        case let .object(members):
            append(UInt8(ascii: "{"))
            for (i, (name, member)) in members.enumerated() {
                if i > 0 { append(UInt8(ascii: ",")) }
                appendJSONString(name)
                append(UInt8(ascii: ":"))
                appendJSON(member)
            }
            append(UInt8(ascii: "}"))
        }
    }

    /// Appends `text` as a JSON string literal (quotes, backslash and control characters escaped).
    public mutating func appendJSONString(_ text: String) {
        append(UInt8(ascii: "\""))
        defer { append(UInt8(ascii: "\"")) }
        // Most strings (ARNs, IDs, operation names) need no escaping: copy them in one go.
        if text.utf8.allSatisfy({ $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            append(contentsOf: text.utf8)
            return
        }
        let digits = Array("0123456789abcdef".utf8)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""): append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0..<0x20:
                append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"),
                                    digits[Int(byte >> 4)], digits[Int(byte & 0xf)]])
            default: append(byte)
            }
        }
    }
}
