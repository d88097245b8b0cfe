/// An encryption context: string pairs bound to a ciphertext as additional authenticated data.
///
/// Part of the vocabulary every side of a key service shares — the engine that binds it, the
/// wire that carries it, the client that sends it, the volume that chooses it — so that none of
/// them needs another's implementation to speak of it.
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
        func append(_ value: Int) {
            let value = UInt32(value)
            bytes += [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
        }
        append(count)
        for (key, value) in sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            append(key.utf8.count)
            bytes += key.utf8
            append(value.utf8.count)
            bytes += value.utf8
        }
        return bytes
    }
}
