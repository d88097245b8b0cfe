import Foundation
import KMSFSCrypto
import KMSFSTestSupport
import Testing
@testable import KMSFSFormat

/// Encrypted names: the vectors of docs/FORMAT.md made by the independent Python implementation
/// (Fixtures/kmsfs_names.py), and the properties the format promises.
@Suite struct NameCipherTests {
    struct Vector: Decodable { let label, directory, name, entry: String; let sideFile: String? }
    struct Target: Decodable { let label, target, stored: String }
    struct Attribute: Decodable { let label, name, stored: String }
    struct Vectors: Decodable { let nameKey, directoryID: String; let vectors: [Vector]; let targets: [Target]; let attributes: [Attribute] }

    static let vectors = try! JSONDecoder().decode(Vectors.self, from: Data(contentsOf: fixture("name-vectors.json")))
    static let cipher = try! NameCipher(nameKey: SecretBytes(copying: bytes(hex: vectors.nameKey)))
    static let directoryID = bytes(hex: vectors.directoryID)

    @Test func vectorsMatchTheReferenceImplementation() throws {
        #expect(Self.vectors.vectors.count == 16)
        for vector in Self.vectors.vectors {
            let directory = vector.directory == "root" ? NameCipher.rootDirectoryID : Self.directoryID
            let backing = try Self.cipher.encrypt(bytes(hex: vector.name), directoryID: directory)
            #expect(backing.entryName == Array(vector.entry.utf8), "\(vector.label) in \(vector.directory)")
            if let sideFile = vector.sideFile {
                #expect(backing == .long(hashed: Array(vector.entry.utf8), encoded: Array(sideFile.utf8)))
            }
            let encoded = vector.sideFile ?? vector.entry
            #expect(try Self.cipher.decrypt(Array(encoded.utf8), directoryID: directory) == bytes(hex: vector.name))
        }
    }

    @Test func symlinkTargetsMatchTheReferenceAndNeverOpenAsNames() throws {
        #expect(Self.vectors.targets.count == 2)
        for vector in Self.vectors.targets {
            #expect(try Self.cipher.encryptTarget(bytes(hex: vector.target)) == Array(vector.stored.utf8), "\(vector.label)")
            #expect(try Self.cipher.decryptTarget(Array(vector.stored.utf8)) == bytes(hex: vector.target))
            #expect(throws: NameError.undecryptable) { try Self.cipher.decrypt(Array(vector.stored.utf8), directoryID: Self.directoryID) }
        }
        let longest = [UInt8](repeating: 0x61, count: NameCipher.maximumTargetLength)
        #expect(try Self.cipher.encryptTarget(longest).count < 4096)
        #expect(throws: NameError.invalid) { try Self.cipher.encryptTarget(longest + [0x61]) }
        let name = try Self.cipher.encrypt(Array("same".utf8), directoryID: Self.directoryID).entryName
        #expect(throws: NameError.undecryptable) { try Self.cipher.decryptTarget(name) }
    }

    @Test func attributeNamesMatchTheReferenceAndValuesAreBoundToTheirName() throws {
        #expect(Self.vectors.attributes.count == 2)
        for vector in Self.vectors.attributes {
            #expect(try Self.cipher.encryptAttributeName(bytes(hex: vector.name)) == Array(vector.stored.utf8), "\(vector.label)")
            #expect(try Self.cipher.decryptAttributeName(Array(vector.stored.utf8)) == bytes(hex: vector.name))
        }
        let colour = try Self.cipher.encryptAttributeName(Array("user.colour".utf8))
        let other = try Self.cipher.encryptAttributeName(Array("user.other".utf8))
        let sealed = try Self.cipher.sealAttributeValue(Array("blue".utf8), storedName: colour)
        #expect(try Self.cipher.openAttributeValue(sealed, storedName: colour) == Array("blue".utf8))
        #expect(try Self.cipher.sealAttributeValue(Array("blue".utf8), storedName: colour) != sealed)  // a fresh nonce each time
        #expect(throws: NameError.undecryptable) { try Self.cipher.openAttributeValue(sealed, storedName: other) }
        var edited = sealed
        edited[14] ^= 1
        #expect(throws: NameError.undecryptable) { try Self.cipher.openAttributeValue(edited, storedName: colour) }
        #expect(throws: NameError.invalid) { try Self.cipher.encryptAttributeName(Array("user.".utf8) + [UInt8](repeating: 97, count: 160)) }
        #expect(try Self.cipher.encryptAttributeName(Array("user.".utf8) + [UInt8](repeating: 97, count: 159)).count <= 255)
    }

    @Test func everyLengthRoundTripsAndLongNamesAreHashed() throws {
        for length in 1...255 {
            let name = (0..<length).map { UInt8(($0 * 37 + length) % 254 + 1) }.map { $0 == 47 ? 48 : $0 }
            guard name != [46], name != [46, 46] else { continue }
            let backing = try Self.cipher.encrypt(name, directoryID: Self.directoryID)
            #expect(backing.entryName.count <= 255)
            switch backing {
            case let .short(encoded):
                #expect(length < 160)
                #expect(try Self.cipher.decrypt(encoded, directoryID: Self.directoryID) == name)
            case let .long(hashed, encoded):
                #expect(length >= 160 && hashed.count == 54 && NameCipher.isLongEntry(hashed))
                #expect(hashed == NameCipher.hashedName(encoded))
                #expect(try Self.cipher.decrypt(encoded, directoryID: Self.directoryID) == name)
            }
        }
    }

    @Test func aNameFromAnotherDirectoryOrEditedDoesNotOpen() throws {
        let name = Array("payroll-2026-layoffs.xlsx".utf8)
        let here = try Self.cipher.encrypt(name, directoryID: Self.directoryID).entryName
        let there = try Self.cipher.encrypt(name, directoryID: NameCipher.rootDirectoryID).entryName
        #expect(here != there)
        #expect(throws: NameError.undecryptable) { try Self.cipher.decrypt(here, directoryID: NameCipher.rootDirectoryID) }
        for index in here.indices {
            var edited = here
            edited[index] = edited[index] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
            #expect(throws: NameError.undecryptable) { try Self.cipher.decrypt(edited, directoryID: Self.directoryID) }
        }
        for garbage in [[], Array("kmsfs.conf".utf8), Array("..".utf8), Array(here.dropLast()), here + here] {
            #expect(throws: NameError.undecryptable) { try Self.cipher.decrypt(garbage, directoryID: Self.directoryID) }
        }
    }

    @Test func namesPosixForbidsAreRefused() {
        for name in [[], [46], [46, 46], Array("a/b".utf8), [97, 0, 98], [UInt8](repeating: 97, count: 256)] {
            #expect(throws: NameError.invalid) { try Self.cipher.encrypt(name, directoryID: Self.directoryID) }
        }
    }

    @Test func base64urlHasOneEncodingPerByteString() {
        for count in 0...40 {
            let data = (0..<count).map { UInt8(($0 * 91 + 7) % 256) }
            let encoded = Base64URL.encode(data)
            #expect(encoded.count == Base64URL.encodedCount(count))
            #expect(Base64URL.decode(encoded) == data)
            #expect(!encoded.contains(UInt8(ascii: "/")) && !encoded.contains(UInt8(ascii: ".")))
        }
        // Spare bits set ("QR" would decode like "QQ"), a bad length, a character outside the alphabet.
        #expect(Base64URL.decode(Array("QR".utf8)) == nil)
        #expect(Base64URL.decode(Array("QUFBQ".utf8)) == nil)
        #expect(Base64URL.decode(Array("QU=B".utf8)) == nil)
    }

    @Test func theReferenceImplementationOpensWhatSwiftSeals() throws {
        let name: [UInt8] = [0x63, 0x61, 0x66, 0xE9, 0x20, 0xFF]
        let encoded = try Self.cipher.encrypt(name, directoryID: Self.directoryID).entryName
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", fixture("kmsfs_names.py").path, "decrypt", Self.vectors.nameKey, Self.vectors.directoryID,
                             String(decoding: encoded, as: UTF8.self)]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
        #expect(String(decoding: stdout, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines) == name.map { String(format: "%02x", $0) }.joined())
    }
}
