/// IAM's wildcard matching: `*` any run of characters (none included), `?` one character.
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
