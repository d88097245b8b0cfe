/// The variable-length part of a key attribute (format 1) and of a bucket record: each field a
/// u16 big-endian length, then its bytes — one rule for both, so their parsers agree on what is
/// malformed.
enum LengthPrefixedFields {
    static func encode(_ fields: [[UInt8]]) -> [UInt8] {
        var bytes: [UInt8] = []
        for field in fields {
            precondition(field.count <= 0xffff, "a length-prefixed field holds at most 65 535 bytes")
            bytes += [UInt8(field.count >> 8), UInt8(field.count & 0xff)] + field
        }
        return bytes
    }

    /// Exactly `count` fields filling `bytes` from `offset` to its end; nil for anything else
    /// (a short length, a field past the end, bytes left over).
    static func decode(_ bytes: [UInt8], from offset: Int, count: Int) -> [[UInt8]]? {
        var offset = offset, fields: [[UInt8]] = []
        while fields.count < count {
            guard offset + 2 <= bytes.count else { return nil }
            let length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
            offset += 2
            guard offset + length <= bytes.count else { return nil }
            fields.append(Array(bytes[offset..<offset + length]))
            offset += length
        }
        return offset == bytes.count ? fields : nil
    }
}
