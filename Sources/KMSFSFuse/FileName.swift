/// A name in a directory as the kernel sends it and the backing filesystem stores it: bytes.
///
/// Not a Swift String: POSIX names are any bytes but '/' and NUL, and String(cString:) repairs
/// invalid UTF-8 with U+FFFD — "caf\u{E9}" in Latin-1 was stored as "caf\u{FFFD}", and two different
/// such names landed on one backing file.
struct FileName: Hashable, CustomStringConvertible {
    /// The bytes with their terminating NUL, ready for a system call.
    let cString: [CChar]

    init(_ pointer: UnsafePointer<CChar>) {
        var length = 0
        while pointer[length] != 0 { length += 1 }
        cString = Array(UnsafeBufferPointer(start: pointer, count: length + 1))
    }

    init(_ text: String) { cString = Array(text.utf8CString) }

    /// From bytes without NUL (a name that came out of the name cipher, or a backing name).
    init(bytes: [UInt8]) { cString = bytes.map { CChar(bitPattern: $0) } + [0] }

    /// The bytes without the terminating NUL.
    var bytes: [UInt8] { cString.dropLast().map { UInt8(bitPattern: $0) } }

    var isDotOrDotDot: Bool { cString == [46, 0] || cString == [46, 46, 0] }

    /// For logs only (invalid UTF-8 shown repaired).
    var description: String { String(decoding: cString.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self) }
}
