import Foundation

/// Just enough XML to answer the query protocol: elements with text or children, escaped.
indirect enum XML: Sendable {
    case text(String, String)
    case element(String, [XML])

    static func date(_ name: String, _ date: Date) -> XML {
        let formatter = ISO8601DateFormatter()
        return .text(name, formatter.string(from: date))
    }

    /// `<Name><member>…</member>…</Name>`, IAM's lists.
    static func members(_ name: String, _ items: [[XML]]) -> XML { .element(name, items.map { .element("member", $0) }) }

    func write(to out: inout String) {
        switch self {
        case let .text(name, value):
            out += "<\(name)>\(Self.escaped(value))</\(name)>"
        case let .element(name, children):
            out += "<\(name)>"
            for child in children { child.write(to: &out) }
            out += "</\(name)>"
        }
    }

    static func escaped(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for character in text.unicodeScalars {
            switch character {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.unicodeScalars.append(character)
            }
        }
        return out
    }
}
