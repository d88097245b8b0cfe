/// Names as the operator tools print them: one line per path whatever the name holds.
///
/// A name may hold any byte but '/' and NUL, so a name with a line break would print as two
/// paths (a user of a shared mount could forge a line of a report), and bytes that are not UTF-8
/// would all print as U+FFFD (two names alike). Control characters and backslash are escaped as
/// in C (`\n`, `\t`, `\\`, `\x1b`), and each byte that is not part of valid UTF-8 as `\xHH`.
public enum PrintableName {
    public static func escaped(_ bytes: some Collection<UInt8>) -> String {
        let bytes = Array(bytes)
        var output = "", index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte < 0x80 {
                switch byte {
                case 0x0a: output += "\\n"
                case 0x09: output += "\\t"
                case 0x0d: output += "\\r"
                case 0x5c: output += "\\\\"
                case 0..<0x20, 0x7f: output += hex(byte)
                default: output.unicodeScalars.append(Unicode.Scalar(byte))
                }
                index += 1
                continue
            }
            // One UTF-8 sequence, if the bytes from here form a valid one; else one byte escaped.
            let length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 0
            if length > 0, index + length <= bytes.count,
               let scalar = String(validating: bytes[index..<index + length], as: UTF8.self),
               scalar.unicodeScalars.allSatisfy({ !($0.properties.generalCategory == .control || $0.properties.generalCategory == .format && $0.value >= 0x2028 && $0.value <= 0x202e) }) {
                output += scalar
                index += length
            } else {
                output += hex(byte)
                index += 1
            }
        }
        return output
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(byte >> 4)]) + String(digits[Int(byte & 15)])
    }
}
