/// IAM's wildcard matching: `*` any run of characters (none included), `?` one character.
///
/// On the path of every request (each statement's actions and resources), so the common shapes
/// — `*`, a plain name, a name ending in `*` — are compared in place on UTF-8 without building
/// anything; only other patterns take the general matcher.
enum Wildcard {
    /// Stands for a literal `*`, `?` or `$` inside a pattern (from a policy variable's value or
    /// `${*}`): a private-use scalar no ARN or name contains, matched against the character itself.
    static let literalStar: Unicode.Scalar = "\u{F8FA}", literalQuestion: Unicode.Scalar = "\u{F8FB}"

    static func literal(_ character: String) -> String {
        switch character {
        case "*": return String(Character(literalStar))
        case "?": return String(Character(literalQuestion))
        default: return character
        }
    }

    static func escaped(_ value: String) -> String {
        value.replacingOccurrences(of: "*", with: literal("*")).replacingOccurrences(of: "?", with: literal("?"))
    }

    static func matches(_ pattern: String, _ text: String, ignoringCase: Bool = false) -> Bool {
        var pattern = pattern, text = text
        if pattern.utf8.count == 1 && pattern.utf8.first == UInt8(ascii: "*") { return true }
        var stars = 0, others = false
        pattern.withUTF8 { bytes in
            for byte in bytes {
                if byte == UInt8(ascii: "*") { stars += 1 } else if byte == UInt8(ascii: "?") || byte >= 0x80 { others = true }
            }
        }
        if !others && (stars == 0 || (stars == 1 && pattern.utf8.last == UInt8(ascii: "*"))) {
            // A plain name, or a plain prefix and `*`.
            return pattern.withUTF8 { p in
                text.withUTF8 { t in
                    let prefix = stars == 1 ? p.count - 1 : p.count
                    guard stars == 1 ? t.count >= prefix : t.count == prefix else { return false }
                    for i in 0..<prefix where !same(p[i], t[i], ignoringCase: ignoringCase) { return false }
                    return true
                }
            }
        }
        return general(pattern, text, ignoringCase: ignoringCase)
    }

    private static func same(_ a: UInt8, _ b: UInt8, ignoringCase: Bool) -> Bool {
        guard a != b else { return true }
        guard ignoringCase else { return false }
        func lower(_ c: UInt8) -> UInt8 { (0x41...0x5a).contains(c) ? c | 0x20 : c }
        return lower(a) == lower(b)
    }

    private static func general(_ pattern: String, _ text: String, ignoringCase: Bool) -> Bool {
        let p = Array((ignoringCase ? pattern.lowercased() : pattern).unicodeScalars)
        let t = Array((ignoringCase ? text.lowercased() : text).unicodeScalars)
        // Iterative matching with backtracking to the last star: linear in practice, no recursion
        // a hostile pattern could make deep.
        var i = 0, j = 0, star = -1, mark = 0
        while j < t.count {
            if i < p.count && (p[i] == "?" || p[i] == t[j] || (p[i] == literalStar && t[j] == "*") || (p[i] == literalQuestion && t[j] == "?")) {
                i += 1
                j += 1
            } else if i < p.count && p[i] == "*" {
                star = i
                mark = j
                i += 1
            } else if star >= 0 {
                i = star + 1
                mark += 1
                j = mark
            } else {
                return false
            }
        }
        while i < p.count && p[i] == "*" { i += 1 }
        return i == p.count
    }
}
