/// Lower-case hex of `bytes`: the form of IDs, digests and test vectors in logs and tools.
/// Inlinable so that each caller gets it specialized (SigV4 runs it three times for every request
/// kmsd serves; the generic form cost 2 % of a request), and written straight into the string.
@inlinable
public func hex(_ bytes: some Collection<UInt8>) -> String {
    String(unsafeUninitializedCapacity: bytes.count * 2) { text in
        var index = 0
        for byte in bytes {
            text[index] = hexDigit(byte >> 4)
            text[index + 1] = hexDigit(byte & 0x0f)
            index += 2
        }
        return index
    }
}

@inlinable @inline(__always)
func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? value &+ UInt8(ascii: "0") : value &+ (UInt8(ascii: "a") - 10) }

/// The bytes `text` spells in hex (either case); nil if it is not whole hex digits.
public func unhex(_ text: some StringProtocol) -> [UInt8]? {
    let digits = Array(text.utf8)
    guard digits.count % 2 == 0 else { return nil }
    var bytes: [UInt8] = []
    bytes.reserveCapacity(digits.count / 2)
    for index in stride(from: 0, to: digits.count, by: 2) {
        guard let high = hexDigitValue(digits[index]), let low = hexDigitValue(digits[index + 1]) else { return nil }
        bytes.append(high << 4 | low)
    }
    return bytes
}

/// The value of one hex digit (either case), or nil.
public func hexDigitValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
