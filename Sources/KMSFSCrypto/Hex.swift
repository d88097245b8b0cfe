/// Lower-case hex of `bytes`: the form of IDs, digests and test vectors in logs and tools.
/// Digits are computed, not looked up in a table made per call: SigV4 runs this three times for
/// every request kmsd serves.
public func hex(_ bytes: some Sequence<UInt8>) -> String {
    var text = [UInt8]()
    text.reserveCapacity(bytes.underestimatedCount * 2)
    for byte in bytes {
        text.append(hexDigit(byte >> 4))
        text.append(hexDigit(byte & 0x0f))
    }
    return String(decoding: text, as: UTF8.self)
}

@inline(__always)
private func hexDigit(_ value: UInt8) -> UInt8 { value < 10 ? value &+ UInt8(ascii: "0") : value &+ (UInt8(ascii: "a") - 10) }

/// The value of one hex digit (either case), or nil.
public func hexDigitValue(_ c: UInt8) -> UInt8? {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
    default: return nil
    }
}
