import Foundation
import KMSClient
import KMSFSCrypto
import KMSFSFormat
@testable import KMSFSVolume
import Synchronization
import Testing

/// Bucket keys' limits under a manual clock, and what a file's key depends on.
@Suite struct BucketKeysTests {
    final class Clock: Sendable {
        let time = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
        func advance(_ seconds: TimeInterval) { time.withLock { $0 += seconds } }
    }

    func buckets(_ fixture: FileKeysTests.Fixture, _ clock: Clock, maxAge: Int = 60, maxFiles: Int = 3) -> BucketKeys {
        BucketKeys(cipherDirectory: fixture.directory.path, volumeID: "vol-1", policy: BucketKeyPolicy(maxAge: maxAge, maxFiles: maxFiles),
                   client: fixture.client, cache: DataKeyCache(), now: { clock.time.withLock { $0 } })
    }

    func newBucket(_ buckets: BucketKeys, _ keyID: String) throws -> [UInt8] {
        try buckets.newFile(keyID: keyID, fileID: SecureRandom.bytes(count: 16)).attribute.bucketID
    }

    @Test func aBucketServesMaxFilesThenANewOneIsMade() throws {
        let fixture = try FileKeysTests.Fixture(), clock = Clock()
        let buckets = buckets(fixture, clock)
        let first = try (0..<3).map { _ in try newBucket(buckets, fixture.keyID) }
        #expect(Set(first).count == 1)
        let fourth = try newBucket(buckets, fixture.keyID)
        #expect(fourth != first[0])
        #expect(try BucketKeys.bucketIDs(cipherDirectory: fixture.directory.path).count == 2)
    }

    @Test func aBucketServesMaxAgeSecondsAndNotAcrossAClockGoingBack() throws {
        let fixture = try FileKeysTests.Fixture(), clock = Clock()
        let buckets = buckets(fixture, clock, maxFiles: 1000)
        let first = try newBucket(buckets, fixture.keyID)
        clock.advance(59)
        #expect(try newBucket(buckets, fixture.keyID) == first)
        clock.advance(1)
        let second = try newBucket(buckets, fixture.keyID)
        #expect(second != first)
        clock.advance(-3600)  // a clock set back must not stretch a bucket's life
        #expect(try newBucket(buckets, fixture.keyID) != second)
    }

    @Test func fileKeysDifferPerFileAndReopenFromTheRecord() throws {
        let fixture = try FileKeysTests.Fixture(), clock = Clock()
        let buckets = buckets(fixture, clock)
        let (a, keyA, arn) = try buckets.newFile(keyID: fixture.keyID, fileID: Array(repeating: 1, count: 16))
        let (b, keyB, _) = try buckets.newFile(keyID: fixture.keyID, fileID: Array(repeating: 2, count: 16))
        #expect(a.bucketID == b.bucketID && arn == fixture.keyID)
        #expect(keyA != keyB)
        // A fresh instance (another mount) derives the same key from the stored record.
        let again = self.buckets(fixture, clock)
        #expect(try again.key(of: a) == keyA)
        // The attribute moved to another file derives another key; a record swapped between
        // buckets does not unwrap (its context names its bucket).
        #expect(try again.key(of: BucketFileKey(fileID: b.fileID, bucketID: a.bucketID)) != keyA)
        let other = try newBucket(self.buckets(fixture, clock), fixture.keyID)
        let directory = fixture.directory.path + "/kmsfs.buckets/"
        try FileManager.default.removeItem(atPath: directory + hex(a.bucketID))
        try FileManager.default.copyItem(atPath: directory + hex(other), toPath: directory + hex(a.bucketID))
        #expect(throws: KMSClientError.self) { try self.buckets(fixture, clock).key(of: a) }
        #expect(throws: FileKeyError.missingBucket) {
            try again.key(of: BucketFileKey(fileID: a.fileID, bucketID: Array(repeating: 9, count: 16)))
        }
        // Attributes round-trip; anything else is malformed.
        #expect(try FileKeyAttribute(decoding: a.encoded) == .bucket(a))
        #expect(throws: FileKeyError.malformedAttribute) { try FileKeyAttribute(decoding: a.encoded.dropLast() + []) }
        #expect(a.encoded.count == 33)
    }
}
