import Testing
import KMSJSON

@Suite struct JSONTests {
    func parse(_ text: String) throws -> JSONValue { try JSONParser.parse(Array(text.utf8)) }

    @Test func values() throws {
        #expect(try parse(#"{"a":1,"b":[true,false,null],"c":"x\"y\\\u00e9\ud83d\ude00","d":-0.5e3}"#)
                == .object([("a", .number("1")), ("b", .array([.bool(true), .bool(false), .null])),
                            ("c", .string("x\"y\\é😀")), ("d", .number("-0.5e3"))]))
        #expect(try parse(" \n{} ") == .object([]))
        #expect(try parse("[]") == .array([]))
    }

    @Test(arguments: [
        "", "{", "{\"a\"", "{\"a\":}", "{\"a\":1,}", "[1,]", "{'a':1}", "{\"a\":01}", "{\"a\":1.}", "{\"a\":tru}",
        "{\"a\":\"\u{01}\"}", "\"\\x\"", "\"\\ud800\"", "{} {}", "{\"a\":-}", "nul",
    ])
    func malformed(text: String) {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(text.utf8)) }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse(Array(deep.utf8)) }
        let fine = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect((try? JSONParser.parse(Array(fine.utf8))) != nil)
    }

    @Test func invalidUTF8IsRejected() {
        #expect(throws: JSONParser.Error.self) { try JSONParser.parse([0x22, 0xff, 0xfe, 0x22]) }
    }

    @Test func writerRoundTrips() throws {
        let value = JSONValue.object([("K", .string("a\"b\n\u{01}é")), ("N", .int(-12)), ("T", .timestamp(1_800_000_000.5)),
                                      ("L", .array([.bool(true), .null]))])
        let text = String(decoding: value.serialized, as: UTF8.self)
        #expect(text == #"{"K":"a\"b\u000a\u0001é","N":-12,"T":1800000000.500,"L":[true,null]}"#)
        #expect(try JSONParser.parse(value.serialized) == value)
        #expect(String(decoding: JSONValue.timestamp(1_800_000_000).serialized, as: UTF8.self) == "1800000000")
    }

    /// A date no calendar has (a peer or an edited store may say so) is written, not trapped on.
    @Test func timestampsSaturate() {
        for seconds in [1e300, -1e300, .infinity, .nan] {
            let text = String(decoding: JSONValue.timestamp(seconds).serialized, as: UTF8.self)
            #expect(!text.isEmpty && text.allSatisfy { $0.isNumber || $0 == "-" || $0 == "." })
        }
    }
}
