import Testing
@testable import KMSFSVolume

/// Paths the operator tools print: one line each, and two different names never alike.
@Suite struct PrintableNameTests {
    @Test func controlCharactersBackslashesAndBrokenUTF8AreEscaped() {
        #expect(PrintableName.escaped(Array("plain name.txt".utf8)) == "plain name.txt")
        #expect(PrintableName.escaped(Array("két 名前".utf8)) == "két 名前")
        #expect(PrintableName.escaped(Array("a\nb\tc\\d".utf8)) == "a\\nb\\tc\\\\d")
        #expect(PrintableName.escaped([0x61, 0x1b, 0x7f]) == "a\\x1b\\x7f")
        #expect(PrintableName.escaped([0x66, 0xff, 0xc3]) == "f\\xff\\xc3")
        // Bidirectional overrides (which reorder what a terminal shows) are escaped too.
        #expect(PrintableName.escaped(Array("x\u{202E}y".utf8)) == "x\\xe2\\x80\\xaey")
        // No two of every single byte print alike, nor as a line break.
        let printed = (1...255).map { PrintableName.escaped([UInt8($0)]) }
        #expect(Set(printed).count == 255 && !printed.contains { $0.contains("\n") })
    }
}
