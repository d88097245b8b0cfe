/// An encryption context: string pairs bound to a ciphertext as additional authenticated data.
public typealias EncryptionContext = [String: String]

extension Dictionary where Key == String, Value == String {
    /// The unambiguous byte encoding that enters the GCM additional data.
    ///
    /// ```
    /// u32 count ‖ for each pair in ascending UTF-8 byte order of its key:
    ///     u32 len(key) ‖ key (UTF-8) ‖ u32 len(value) ‖ value (UTF-8)
    /// ```
    /// Lengths make every boundary explicit, so `{"ab":"c"}` and `{"a":"bc"}` encode differently
    /// (a plain concatenation would not), and sorting makes the order of the caller's map irrelevant.
    public var canonicalEncoding: [UInt8] {
        var bytes: [UInt8] = []
        bytes.appendUInt32(UInt32(count))
        for (key, value) in sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            bytes.appendUInt32(UInt32(key.utf8.count))
            bytes += key.utf8
            bytes.appendUInt32(UInt32(value.utf8.count))
            bytes += value.utf8
        }
        return bytes
    }
}

extension Array where Element == UInt8 {
    mutating func appendUInt32(_ value: UInt32) {
        append(contentsOf: [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)])
    }

    func readUInt32(at offset: Int) -> UInt32 {
        self[offset..<offset + 4].reduce(0) { $0 << 8 | UInt32($1) }
    }
}
