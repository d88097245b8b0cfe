import KMSFSCrypto
import Testing
import KMSFSTestSupport
@testable import KMSFSFormat

@Suite struct HeaderTests {
    let header = FileHeader(chunkSize: 65536, fileID: FileID(bytes: Array(0xA0...0xAF)))

    @Test func layout() {
        #expect(hex(header.encoded) == "4b4d5346" + "0002" + "0000" + "00010000" + "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf" + "00000000")
        #expect(header.encoded.count == FileHeader.byteCount)
    }

    @Test func roundTrip() throws {
        #expect(try FileHeader(decoding: header.encoded) == header)
    }

    @Test func rejectsWhatItCannotRead() {
        var bytes = header.encoded
        #expect(throws: FormatError.notAnEncryptedFile) { try FileHeader(decoding: bytes.prefix(31)) }
        #expect(throws: FormatError.notAnEncryptedFile) { try FileHeader(decoding: [UInt8](repeating: 0, count: 32)) }
        bytes[5] = 1  // format 1: AES-GCM with 96-bit nonces, no longer read
        #expect(throws: FormatError.unsupportedVersion(1)) { try FileHeader(decoding: bytes) }
        bytes[5] = 3
        #expect(throws: FormatError.unsupportedVersion(3)) { try FileHeader(decoding: bytes) }
        bytes = header.encoded
        bytes[7] = 1
        #expect(throws: FormatError.corruptHeader("flags set")) { try FileHeader(decoding: bytes) }
        bytes = header.encoded
        bytes[10] = 0x03  // 0x00030000 is not a power of two
        #expect(throws: FormatError.self) { try FileHeader(decoding: bytes) }
        bytes = header.encoded
        bytes[31] = 1
        #expect(throws: FormatError.corruptHeader("reserved bytes set")) { try FileHeader(decoding: bytes) }
    }
}
