import KMSFSCrypto

/// Takes a base64 member (a data key's `Plaintext`) out of a JSON answer straight into a
/// ``SecretBytes`` — the locked key heap — and blanks it in the body, so that no String, Data or
/// array of the parsed answer ever holds the key, in base64 or raw.
///
/// Looks for the member as AWS writes it (`"Plaintext"`, a colon, a string of base64 without
/// escapes). Anything else (an escaped name, a malformed value) is left alone: the ordinary parse
/// then reads it, or reports it as malformed.
enum SecretMember {
    static func take(_ name: String, from body: inout [UInt8]) -> SecretBytes? {
        let key = Array("\"\(name)\"".utf8)
        guard let found = body.range(of: key) else { return nil }
        // Twice (a duplicate member, or the name inside another value): left to the parser,
        // which takes the last top-level one, as before.
        guard body.range(of: key, from: found.upperBound) == nil else { return nil }
        var i = found.upperBound
        func skipSpace() { while i < body.count, [0x20, 0x09, 0x0a, 0x0d].contains(body[i]) { i += 1 } }
        skipSpace()
        guard i < body.count, body[i] == UInt8(ascii: ":") else { return nil }
        i += 1
        skipSpace()
        guard i < body.count, body[i] == UInt8(ascii: "\"") else { return nil }
        let start = i + 1
        guard let end = body[start...].firstIndex(of: UInt8(ascii: "\"")) else { return nil }
        guard let secret = decode(body, start..<end) else { return nil }
        for j in start..<end { body[j] = UInt8(ascii: "A") }
        return secret
    }

    /// Standard base64 with padding, decoded byte by byte into the secret's own buffer.
    private static func decode(_ text: [UInt8], _ range: Range<Int>) -> SecretBytes? {
        guard range.count % 4 == 0 else { return nil }
        var padding = 0
        if range.count > 0, text[range.upperBound - 1] == UInt8(ascii: "=") { padding += 1 }
        if range.count > 1, text[range.upperBound - 2] == UInt8(ascii: "=") { padding += 1 }
        let count = range.count / 4 * 3 - padding
        var valid = true
        let secret = SecretBytes(count: count) { output in
            var bits: UInt32 = 0, held = 0, written = 0
            for index in range.lowerBound..<(range.upperBound - padding) {
                guard let value = sextet(text[index]) else { valid = false; return }
                bits = bits << 6 | UInt32(value)
                held += 6
                if held >= 8 {
                    held -= 8
                    guard written < count else { valid = false; return }
                    output[written] = UInt8(truncatingIfNeeded: bits >> UInt32(held))
                    written += 1
                }
            }
            bits = 0
            valid = valid && written == count
        }
        return valid ? secret : nil
    }

    private static func sextet(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return c - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return c - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): return 62
        case UInt8(ascii: "/"): return 63
        default: return nil
        }
    }
}
