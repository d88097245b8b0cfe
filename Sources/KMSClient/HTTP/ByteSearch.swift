#if canImport(Glibc)
import Glibc
#endif


extension Array where Element == UInt8 {
    /// The range of the first occurrence of `needle` at or after `start`, (memchr, memcmp).
    /// Foundation's generic `firstRange(of:)` compared element by element through protocol
    /// witnesses: a third of the client's time per call in `kmsfs rewrap`.
    func range(of needle: [UInt8], from start: Int = 0) -> Range<Int>? {
        guard !needle.isEmpty, start >= 0, start <= count, count - start >= needle.count else { return nil }
        return withUnsafeBytes { haystack in
            needle.withUnsafeBytes { needle in
                let base = haystack.baseAddress!, first = Int32(needle[0])
                var offset = start
                // memchr for the first byte, memcmp for the rest (memmem is a GNU extension
                // Swift's Glibc module does not show).
                while haystack.count - offset >= needle.count {
                    guard let hit = memchr(base + offset, first, haystack.count - offset - needle.count + 1) else { return nil }
                    offset = base.distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + offset, needle.baseAddress!, needle.count) == 0 { return offset..<offset + needle.count }
                    offset += 1
                }
                return nil
            }
        }
    }
}
