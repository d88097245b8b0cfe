/// Unpadded base64url (RFC 4648 §5): the alphabet of encrypted names. It has neither '/' nor
/// '.', so no encrypted name is "." or "..", contains a separator, or starts like a name of
/// kmsfs's own ("kmsfs.").
enum Base64URL {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
    private static let values: [UInt8] = {
        var table = [UInt8](repeating: 0xFF, count: 256)
        for (index, character) in alphabet.enumerated() { table[Int(character)] = UInt8(index) }
        return table
    }()

    static func encodedCount(_ byteCount: Int) -> Int { (byteCount * 4 + 2) / 3 }

    static func encode(_ bytes: [UInt8]) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(encodedCount(bytes.count))
        var index = 0
        while index < bytes.count {
            let chunk = bytes[index..<min(index + 3, bytes.count)]
            var group = 0
            for byte in chunk { group = group << 8 | Int(byte) }
            group <<= 8 * (3 - chunk.count)
            for position in 0...chunk.count { output.append(alphabet[(group >> (18 - 6 * position)) & 63]) }
            index += 3
        }
        return output
    }

    /// Nil for a character outside the alphabet, an impossible length or non-zero spare bits
    /// (one encoding per byte string, so an edited name cannot decode to the same bytes).
    static func decode(_ text: some Collection<UInt8>) -> [UInt8]? {
        guard text.count % 4 != 1 else { return nil }
        var output: [UInt8] = []
        output.reserveCapacity(text.count * 3 / 4)
        var group = 0, bits = 0
        for character in text {
            let value = values[Int(character)]
            guard value != 0xFF else { return nil }
            group = group << 6 | Int(value)
            bits += 6
            if bits >= 8 {
                bits -= 8
                output.append(UInt8((group >> bits) & 0xFF))
            }
        }
        guard group & ((1 << bits) - 1) == 0 else { return nil }
        return output
    }
}
