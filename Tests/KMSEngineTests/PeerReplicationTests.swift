import Foundation
import KMSFSCrypto
import Synchronization
import Testing
@testable import KMSEngine

/// Multi-Region keys across two deployments, each an engine on its own store with its own root
/// key and clock, wired to each other in-process (the mutual-TLS transport is
/// test_peer_replication.py's): a replica is Creating until its deployment has it, material and
/// rotation reach it, UpdatePrimaryRegion hands the key over, a replica's deletion waits until
/// the primary's deployment knows, and a peer changes nothing it does not speak for.
@Suite struct PeerReplicationTests {
    /// Deployment "eu" serves eu-west-1 (the fixtures' Region), "us" serves us-west-2.
    static let usRegion = "us-west-2"

    /// One deployment's view of its peers: the other engines, called directly, as the peer's name.
    final class DirectPeer: ReplicaPeers, @unchecked Sendable {
        let name: String
        /// Each peer's Regions, by peer name.
        let peerRegions: [String: [String]]
        private let targets = Mutex<[String: KMSEngine]>([:])
        let down = Atomic<Bool>(false)
        /// The peer applies what it is sent, but its answer is lost.
        let answersLost = Atomic<Bool>(false)
        init(name: String, peers: [String: [String]]) {
            (self.name, self.peerRegions) = (name, peers)
        }
        convenience init(name: String, peerName: String, peerRegions: [String]) {
            self.init(name: name, peers: [peerName: peerRegions])
        }
        /// Connects the only peer, or `peer`, to `engine` (nil: lets go of it).
        func connect(_ engine: KMSEngine?, peer: String? = nil) {
            let name = peer ?? peerRegions.keys.first!
            targets.withLock { $0[name] = engine }
        }
        func peer(serving region: String) -> String? { peerRegions.first { $0.value.contains(region) }?.key }
        func serves(_ region: String) -> Bool { peer(serving: region) == nil }
        func deliver(_ message: [UInt8], to peer: String) throws(PeerFailure) {
            guard !down.load(ordering: .relaxed), let engine = targets.withLock({ $0[peer] }) else { throw PeerFailure("\(peer) is down") }
            do { try engine.receivePeerMessage(message, from: name) } catch {
                throw PeerFailure("\(error)", code: (error as? KMSError)?.code.rawValue)
            }
            if answersLost.load(ordering: .relaxed) { throw PeerFailure("the answer was lost") }
        }
    }

    /// Two deployments connected both ways.
    final class Pair {
        let eu: EngineFixture, us: EngineFixture
        let euLink = DirectPeer(name: "eu", peerName: "us", peerRegions: [usRegion])
        let usLink = DirectPeer(name: "us", peerName: "eu", peerRegions: ["eu-west-1"])
        var usCaller: Caller {
            var caller = us.caller
            caller.region = usRegion
            return caller
        }

        init() throws {
            eu = try EngineFixture()
            us = try EngineFixture()
            for f in [eu, us] { _ = try f.engine.createAccount(accountID: f.caller.account, name: "one account, two deployments") }
            connect()
        }

        func connect() {
            eu.engine.connectPeers(euLink, every: nil)
            us.engine.connectPeers(usLink, every: nil)
            euLink.connect(us.engine)
            usLink.connect(eu.engine)
        }

        /// The links hold the other engine: let go of both (a store stays locked while its engine lives).
        func disconnect() {
            euLink.connect(nil)
            usLink.connect(nil)
        }

        deinit { disconnect() }

        func reopen() throws {
            disconnect()
            try eu.reopen()
            try us.reopen()
            connect()
        }

        /// A multi-Region primary in eu with a replica made in us.
        func replicatedKey() throws -> String {
            var request = CreateKeyRequest()
            request.multiRegion = true
            let keyID = try eu.engine.createKey(request, caller: eu.caller).keyMetadata.keyId
            var replicate = ReplicateKeyRequest(keyID: keyID, replicaRegion: usRegion)
            replicate.description = "the US copy"
            replicate.tags = [Tag(tagKey: "site", tagValue: "us")]
            let answer = try eu.engine.replicateKey(replicate, caller: eu.caller)
            #expect(answer.replicaKeyMetadata.keyState == .creating)
            #expect(throws: KMSError.notFound) { try us.engine.describeKey(keyID: keyID, caller: usCaller) }
            #expect(eu.engine.synchronizePeers() == (1, 0))
            return keyID
        }
    }

    @Test func aReplicaAtAPeerSharesMaterialAndRotationAndSurvivesRestarts() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        let replica = try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata
        #expect(replica.keyState == .enabled && replica.description == "the US copy")
        #expect(replica.multiRegionConfiguration?.keyType == .replica && replica.multiRegionConfiguration?.primaryKey.region == "eu-west-1")
        #expect(try p.us.engine.listResourceTags(keyID: keyID, caller: p.usCaller).tags == [Tag(tagKey: "site", tagValue: "us")])
        let primary = try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata
        #expect(primary.multiRegionConfiguration?.replicaKeys.map(\.region) == [Self.usRegion])
        #expect(p.eu.engine.synchronizePeers() == (0, 0))  // nothing left to send

        let sealed = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("made in eu"), caller: p.eu.caller).ciphertextBlob
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: sealed, caller: p.usCaller).plaintext) == "made in eu")
        _ = try p.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: p.eu.caller)
        let rotated = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("after rotation"), caller: p.eu.caller).ciphertextBlob
        #expect(throws: KMSError.self) { try p.us.engine.decrypt(ciphertextBlob: rotated, caller: p.usCaller) }  // not there yet
        #expect(p.eu.engine.synchronizePeers() == (1, 0))
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: rotated, caller: p.usCaller).plaintext) == "after rotation")
        #expect(throws: KMSError.unsupportedOperation) { try p.us.engine.rotateKeyOnDemand(keyID: keyID, caller: p.usCaller) }

        // Each Region's own state: disabling the replica leaves the primary usable.
        try p.us.engine.disableKey(keyID: keyID, caller: p.usCaller)
        #expect(text(try p.eu.engine.decrypt(ciphertextBlob: rotated, caller: p.eu.caller).plaintext) == "after rotation")
        try p.us.engine.enableKey(keyID: keyID, caller: p.usCaller)

        try p.reopen()
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: rotated, caller: p.usCaller).plaintext) == "after rotation")
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: sealed, caller: p.usCaller).plaintext) == "made in eu")
        #expect(p.eu.engine.synchronizePeers() == (0, 0))
    }

    @Test func aPeerThatWasDownGetsWhatItMissed() throws {
        let p = try Pair()
        var request = CreateKeyRequest()
        request.multiRegion = true
        let keyID = try p.eu.engine.createKey(request, caller: p.eu.caller).keyMetadata.keyId
        p.euLink.down.store(true, ordering: .relaxed)
        _ = try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: "eu-central-1"), caller: p.eu.caller)
        _ = try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: Self.usRegion), caller: p.eu.caller)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))
        // The primary alone sends the replica asked of the peer: it stays the primary until then.
        #expect(throws: KMSError.invalidState) { try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: "eu-central-1", caller: p.eu.caller) }
        _ = try p.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: p.eu.caller)
        try p.reopen()  // what is owed survives a restart: it is read off the records
        p.euLink.down.store(false, ordering: .relaxed)
        #expect(p.eu.engine.synchronizePeers() == (1, 0))
        let rotated = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("v2"), caller: p.eu.caller).ciphertextBlob
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: rotated, caller: p.usCaller).plaintext) == "v2")
    }

    @Test func updatePrimaryRegionHandsTheKeyToThePeer() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: p.eu.caller)
        let updating = try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata
        #expect(updating.keyState == .updating && updating.multiRegionConfiguration?.keyType == .replica)
        // Updating keys stay usable, and take no state change.
        let sealed = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("while updating"), caller: p.eu.caller).ciphertextBlob
        #expect(throws: KMSError.invalidState) { try p.eu.engine.disableKey(keyID: keyID, caller: p.eu.caller) }
        #expect(throws: KMSError.invalidState) { try p.eu.engine.scheduleKeyDeletion(keyID: keyID, caller: p.eu.caller) }

        #expect(p.eu.engine.synchronizePeers() == (1, 0))
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.keyState == .enabled)
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.multiRegionConfiguration?.keyType == .primary)
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: sealed, caller: p.usCaller).plaintext) == "while updating")

        // The new primary rotates and replicates; the old one may do neither.
        #expect(throws: KMSError.unsupportedOperation) { try p.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: p.eu.caller) }
        #expect(throws: KMSError.unsupportedOperation) {
            try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: "ap-south-1"), caller: p.eu.caller)
        }
        _ = try p.us.engine.rotateKeyOnDemand(keyID: keyID, caller: p.usCaller)
        #expect(p.us.engine.synchronizePeers() == (1, 0))
        let rotated = try p.us.engine.encrypt(keyID: keyID, plaintext: secret("made in us"), caller: p.usCaller).ciphertextBlob
        #expect(text(try p.eu.engine.decrypt(ciphertextBlob: rotated, caller: p.eu.caller).plaintext) == "made in us")
        #expect(p.eu.engine.synchronizePeers() == (0, 0))  // the former primary has stopped speaking for the key
    }

    @Test func aReplicasDeletionWaitsUntilThePrimarysDeploymentKnows() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        #expect(try p.eu.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: p.eu.caller).keyState == .pendingReplicaDeletion)
        _ = try p.us.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: p.usCaller)
        p.us.clock.advance(days: 8)
        #expect(try p.us.engine.runScheduledTasks().deleted == 0)  // the primary's deployment does not know yet
        p.usLink.down.store(true, ordering: .relaxed)
        #expect(p.us.engine.synchronizePeers() == (0, 1))
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.keyState == .pendingDeletion)
        p.usLink.down.store(false, ordering: .relaxed)
        #expect(p.us.engine.synchronizePeers() == (1, 0))
        #expect(throws: KMSError.notFound) { try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller) }
        let primary = try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata
        #expect(primary.keyState == .pendingDeletion && primary.multiRegionConfiguration?.replicaKeys.isEmpty == true)
        #expect(primary.deletionDate == p.eu.clock.now().addingTimeInterval(7 * 86_400))
    }

    /// A message as a peer could forge it: the key's shared state with the given material.
    static func forged(_ record: KeyRecord, regions: [String], material: [UInt32: SecretBytes],
                       replicas: [String: PeerReplicaRequest] = [:]) throws -> [UInt8] {
        try PeerMessage.syncKey(.init(record: record, regions: regions, material: material, replicas: replicas)).serialized
    }

    @Test func aPeerChangesNothingItDoesNotSpeakFor() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        let sealed = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("eu's secret"), caller: p.eu.caller).ciphertextBlob
        let record = try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.record })
        let other = [UInt32(1): try SecretBytes.random(count: 32)]

        // us claims the primary of eu's key, with its own material: refused, nothing changed.
        var claimed = KMSEngine.sharedPart(of: record)
        claimed.region = Self.usRegion
        claimed.primaryRegion = Self.usRegion
        #expect(throws: KMSError.accessDenied) {
            try p.eu.engine.receivePeerMessage(try Self.forged(claimed, regions: ["eu-west-1", Self.usRegion], material: other), from: "us")
        }
        // Replicas in a Region it does not serve, or of a key it does not hold the primary of.
        var fresh = claimed
        fresh.keyID = "mrk-" + String(repeating: "ab", count: 16)
        #expect(throws: KMSError.validation) {
            try p.eu.engine.receivePeerMessage(try Self.forged(fresh, regions: ["eu-west-1", Self.usRegion], material: other,
                                                               replicas: [Self.usRegion: .init(description: "", policy: KeyPolicies.defaultPolicy(account: fresh.account), tags: [])]), from: "us")
        }
        // The primary's own deployment cannot swap a version's material at the replica either.
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(KMSEngine.sharedPart(of: record), regions: ["eu-west-1", Self.usRegion], material: other), from: "eu")
        }
        // Nor make the replica's material expire (the scheduler would delete it here).
        var expiring = KMSEngine.sharedPart(of: record)
        expiring.versions[0].expirationModel = .expires
        expiring.versions[0].validTo = p.us.clock.now()
        let material = [UInt32(1): try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.material[1] }).storedBytes()]
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(expiring, regions: ["eu-west-1", Self.usRegion], material: material), from: "eu")
        }
        // A deletion of a copy in a Region the sender does not serve; a single-Region key; garbage.
        let deleted = try PeerMessage.replicaDeleted(account: record.account, keyID: keyID, region: Self.usRegion).serialized
        #expect(throws: KMSError.accessDenied) { try p.us.engine.receivePeerMessage(deleted, from: "eu") }
        var single = KMSEngine.sharedPart(of: record)
        single.keyID = UUID().uuidString.lowercased()
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(single, regions: ["eu-west-1", Self.usRegion], material: other), from: "eu")
        }
        #expect(throws: KMSError.validation) { try p.us.engine.receivePeerMessage(Array("{\"Type\":\"SyncKey\"".utf8), from: "eu") }

        #expect(text(try p.eu.engine.decrypt(ciphertextBlob: sealed, caller: p.eu.caller).plaintext) == "eu's secret")
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: sealed, caller: p.usCaller).plaintext) == "eu's secret")
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.multiRegionConfiguration?.keyType == .primary)
        #expect(throws: KMSError.notFound) { try p.eu.engine.describeKey(keyID: fresh.keyID, caller: p.usCaller) }
    }

    @Test func aHandoverWhoseAnswerWasLostIsAcknowledgedWhenSentAgain() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: p.eu.caller)
        p.euLink.answersLost.store(true, ordering: .relaxed)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))  // applied in us, unanswered
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.multiRegionConfiguration?.keyType == .primary)
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.keyState == .updating)
        p.euLink.answersLost.store(false, ordering: .relaxed)
        #expect(p.eu.engine.synchronizePeers() == (1, 0))  // us has it already: "nothing new", acknowledged
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.keyState == .enabled)
        #expect(p.eu.engine.synchronizePeers() == (0, 0))
    }

    @Test func aReplicaTakesOnlyWhatCopiesShare() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        let record = try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.record })
        let material = [UInt32(1): try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.material[1] }).storedBytes()]
        let policy = KeyPolicies.defaultPolicy(account: record.account)

        // A new key whose record carries another deployment's bookkeeping and states: the replica
        // made here is Enabled, speaks for nothing and waits for no deletion.
        var loaded = KMSEngine.sharedPart(of: record)
        loaded.keyID = "mrk-" + String(repeating: "cd", count: 16)
        loaded.handingOver = true
        loaded.stateAfterUpdate = .disabled
        loaded.state = .pendingDeletion
        loaded.deletionDate = p.us.clock.now()
        loaded.peerSynced = [Self.usRegion: "x"]
        loaded.peerReplicaRequests = ["eu-west-1": .init(description: "", policy: policy, tags: [])]
        try p.us.engine.receivePeerMessage(try Self.forged(loaded, regions: ["eu-west-1", Self.usRegion], material: material,
                                                           replicas: [Self.usRegion: .init(description: "", policy: policy, tags: [])]), from: "eu")
        let made = try #require(p.us.engine.state.withLock { $0.keys.all(loaded.keyID).first?.record })
        #expect(made.state == .enabled && made.deletionDate == nil && made.handingOver == nil && made.stateAfterUpdate == nil)
        #expect(made.peerSynced == nil && made.peerReplicaRequests == nil && !made.speaksToPeers)
        #expect(p.us.engine.synchronizePeers() == (0, 0))

        // An epoch no key reaches (the next change of primary would overflow).
        for value in [Int.max, KeyRecord.maximumPrimaryEpoch] {
            var epoch = loaded
            epoch.primaryEpoch = value
            #expect(throws: KMSError.validation) {
                try p.us.engine.receivePeerMessage(try Self.forged(epoch, regions: ["eu-west-1", Self.usRegion], material: material), from: "eu")
            }
        }
        // Material a store could not open again (empty HMAC keys), or a spec with a usage it has not.
        var hmac = loaded
        hmac.keyID = "mrk-" + String(repeating: "1b", count: 16)
        hmac.spec = .hmac256
        hmac.usage = .generateVerifyMAC
        let mac = PeerReplicaRequest(description: "", policy: policy, tags: [])
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(hmac, regions: ["eu-west-1", Self.usRegion], material: [1: SecretBytes(copying: [UInt8]())],
                                                               replicas: [Self.usRegion: mac]), from: "eu")
        }
        var mismatched = hmac
        mismatched.usage = .encryptDecrypt
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(mismatched, regions: ["eu-west-1", Self.usRegion], material: [1: try SecretBytes.random(count: 32)],
                                                               replicas: [Self.usRegion: mac]), from: "eu")
        }
        // Versions out of order or beyond any rotation (the next rotation would overflow).
        var last = KMSEngine.sharedPart(of: record)
        last.versions[0].version = .max
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(last, regions: ["eu-west-1", Self.usRegion], material: [.max: material[1]!]), from: "eu")
        }
        // A replica in an account this deployment does not have, or with a policy that shuts the account out.
        var stranger = loaded
        stranger.keyID = "mrk-" + String(repeating: "ef", count: 16)
        stranger.account = "999988887777"
        #expect(throws: KMSError.notFound) {
            try p.us.engine.receivePeerMessage(try Self.forged(stranger, regions: ["eu-west-1", Self.usRegion], material: material,
                                                               replicas: [Self.usRegion: .init(description: "", policy: KeyPolicies.defaultPolicy(account: stranger.account), tags: [])]), from: "eu")
        }
        var shut = loaded
        shut.keyID = "mrk-" + String(repeating: "0a", count: 16)
        let denyAll = #"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"kms:*","Resource":"*"}]}"#
        #expect(throws: KMSError.malformedPolicyDocument) {
            try p.us.engine.receivePeerMessage(try Self.forged(shut, regions: ["eu-west-1", Self.usRegion], material: material,
                                                               replicas: [Self.usRegion: .init(description: "", policy: denyAll, tags: [])]), from: "eu")
        }
    }

    @Test func aReplicaThePeerRefusesForGoodIsNoLongerListed() throws {
        let p = try Pair()
        var request = CreateKeyRequest()
        request.multiRegion = true
        let other = Caller(account: "444455556666", region: "eu-west-1", requestID: "test")  // an account eu has and us does not
        _ = try p.eu.engine.createAccount(accountID: other.account, name: "eu only")
        let keyID = try p.eu.engine.createKey(request, caller: other).keyMetadata.keyId
        _ = try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: Self.usRegion), caller: other)
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: other).keyMetadata.multiRegionConfiguration?.replicaKeys.count == 1)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))  // NotFoundException: us has no such account
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: other).keyMetadata.multiRegionConfiguration?.replicaKeys.isEmpty == true)
        #expect(p.eu.engine.synchronizePeers() == (0, 0))  // nothing owed any more
        // Once us has the account, ReplicateKey works.
        _ = try p.us.engine.createAccount(accountID: other.account, name: "now in us too")
        _ = try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: Self.usRegion), caller: other)
        #expect(p.eu.engine.synchronizePeers() == (1, 0))
        var there = other
        there.region = Self.usRegion
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: there).keyMetadata.keyState == .enabled)
    }

    @Test func handoversAreOrderedByEpoch() throws {
        // A: eu hands the primary to us, the answer is lost; us hands it back before eu hears.
        let p = try Pair()
        let keyID = try p.replicatedKey()
        try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: p.eu.caller)
        p.euLink.answersLost.store(true, ordering: .relaxed)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))
        p.euLink.answersLost.store(false, ordering: .relaxed)
        try p.us.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: "eu-west-1", caller: p.usCaller)
        #expect(p.us.engine.synchronizePeers() == (1, 0))
        #expect(p.eu.engine.synchronizePeers().failed == 0)
        let eu = try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata
        let us = try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata
        #expect(eu.keyState == .enabled && eu.multiRegionConfiguration?.keyType == .primary)
        #expect(us.keyState == .enabled && us.multiRegionConfiguration?.keyType == .replica)
        _ = try p.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: p.eu.caller)

        // B: a former primary's stale message, arriving after a newer handover, changes nothing.
        try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: p.eu.caller)  // epoch 3
        p.euLink.answersLost.store(true, ordering: .relaxed)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))
        p.euLink.answersLost.store(false, ordering: .relaxed)
        p.usLink.down.store(true, ordering: .relaxed)
        try p.us.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: "eu-west-1", caller: p.usCaller)  // epoch 4, not delivered
        #expect(p.us.engine.synchronizePeers() == (0, 1))
        #expect(p.eu.engine.synchronizePeers() == (0, 1))  // eu's epoch-3 retry: stale at us, refused
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.multiRegionConfiguration?.primaryKey.region == "eu-west-1")
        p.usLink.down.store(false, ordering: .relaxed)
        #expect(p.us.engine.synchronizePeers() == (1, 0))
        _ = p.eu.engine.synchronizePeers()
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.multiRegionConfiguration?.keyType == .primary)
        #expect(try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.keyState == .enabled)
        #expect(p.eu.engine.synchronizePeers() == (0, 0) && p.us.engine.synchronizePeers() == (0, 0))
        let sealed = try p.eu.engine.encrypt(keyID: keyID, plaintext: secret("settled"), caller: p.eu.caller).ciphertextBlob
        #expect(text(try p.us.engine.decrypt(ciphertextBlob: sealed, caller: p.usCaller).plaintext) == "settled")
    }

    @Test func aReplicaPendingDeletionDoesNotBecomeThePrimary() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        _ = try p.us.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: p.usCaller)
        try p.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: p.eu.caller)
        #expect(p.eu.engine.synchronizePeers() == (0, 1))  // KMSInvalidStateException at us
        #expect(try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata.keyState == .updating)
        // The replica's deletion reaches eu: the primary stays there.
        p.us.clock.advance(days: 8)
        #expect(p.us.engine.synchronizePeers() == (1, 0))
        let primary = try p.eu.engine.describeKey(keyID: keyID, caller: p.eu.caller).keyMetadata
        #expect(primary.keyState == .enabled && primary.multiRegionConfiguration?.keyType == .primary)
        #expect(primary.multiRegionConfiguration?.replicaKeys.isEmpty == true)
        _ = try p.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: p.eu.caller)
    }

    @Test func rotationSettingsAndEveryRegionReachThePeer() throws {
        let p = try Pair()
        let keyID = try p.replicatedKey()
        _ = try p.eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: "eu-central-1"), caller: p.eu.caller)  // eu's own
        try p.eu.engine.enableKeyRotation(keyID: keyID, rotationPeriodInDays: 180, caller: p.eu.caller)
        #expect(p.eu.engine.synchronizePeers() == (1, 0))
        let status = try p.us.engine.getKeyRotationStatus(keyID: keyID, caller: p.usCaller)
        #expect(status.keyRotationEnabled && status.rotationPeriodInDays == 180)
        let regions = try p.us.engine.describeKey(keyID: keyID, caller: p.usCaller).keyMetadata.multiRegionConfiguration?.replicaKeys.map(\.region)
        #expect(regions == ["eu-central-1", Self.usRegion])
        // Dates no calendar has are refused (they trapped the wire's timestamps).
        var far = KMSEngine.sharedPart(of: try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first { $0.record.region == "eu-west-1" }?.record }))
        far.versions[0].creationDate = Date(timeIntervalSince1970: 1e300)
        let material = [UInt32(1): try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.material[1] }).storedBytes()]
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(far, regions: ["eu-central-1", "eu-west-1", Self.usRegion], material: material), from: "eu")
        }
    }

    /// eu, us and ap, each a peer of the others; a multi-Region key made in eu, replicated to both.
    final class Trio {
        let eu = try! EngineFixture(), us = try! EngineFixture(), ap = try! EngineFixture()
        var links: [String: DirectPeer] = [:]
        var fixtures: [String: EngineFixture] { ["eu": eu, "us": us, "ap": ap] }
        init() throws {
            let regions = ["eu": ["eu-west-1"], "us": [PeerReplicationTests.usRegion], "ap": ["ap-south-1"]]
            for (name, f) in fixtures {
                _ = try f.engine.createAccount(accountID: f.caller.account, name: "one account, three deployments")
                links[name] = DirectPeer(name: name, peers: regions.filter { $0.key != name })
                f.engine.connectPeers(links[name]!, every: nil)
            }
            for (name, link) in links { for (other, f) in fixtures where other != name { link.connect(f.engine, peer: other) } }
        }
        deinit { for (name, link) in links { for other in fixtures.keys where other != name { link.connect(nil, peer: other) } } }
        func caller(_ region: String) -> Caller { Caller(account: eu.caller.account, region: region, requestID: "test") }
        func key() throws -> String {
            var request = CreateKeyRequest()
            request.multiRegion = true
            let keyID = try eu.engine.createKey(request, caller: eu.caller).keyMetadata.keyId
            for region in [PeerReplicationTests.usRegion, "ap-south-1"] {
                _ = try eu.engine.replicateKey(ReplicateKeyRequest(keyID: keyID, replicaRegion: region), caller: eu.caller)
            }
            #expect(eu.engine.synchronizePeers() == (2, 0))
            return keyID
        }
        /// Rounds everywhere until nothing is owed (at most `rounds`).
        func settle(rounds: Int = 6) {
            for _ in 0..<rounds where [eu, us, ap].map({ $0.engine.synchronizePeers() }).contains(where: { $0 != (0, 0) }) {}
        }
    }

    @Test func twoHandoversWhileADeploymentIsDownReachItWhenItIsBack() throws {
        let t = try Trio()
        let keyID = try t.key()
        for (_, link) in t.links { link.connect(nil, peer: "ap") }  // ap is down
        try t.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: t.eu.caller)
        _ = t.eu.engine.synchronizePeers()
        try t.us.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: "ap-south-1", caller: t.caller(Self.usRegion))
        _ = t.us.engine.synchronizePeers()
        for (name, link) in t.links where name != "ap" { link.connect(t.ap.engine, peer: "ap") }
        t.settle()
        #expect(try t.ap.engine.describeKey(keyID: keyID, caller: t.caller("ap-south-1")).keyMetadata.multiRegionConfiguration?.keyType == .primary)
        for (f, region) in [(t.eu, "eu-west-1"), (t.us, Self.usRegion)] {
            let copy = try f.engine.describeKey(keyID: keyID, caller: t.caller(region)).keyMetadata
            #expect(copy.keyState == .enabled && copy.multiRegionConfiguration?.primaryKey.region == "ap-south-1")
        }
        _ = try t.ap.engine.rotateKeyOnDemand(keyID: keyID, caller: t.caller("ap-south-1"))
        t.settle()
        let sealed = try t.ap.engine.encrypt(keyID: keyID, plaintext: secret("from ap"), caller: t.caller("ap-south-1")).ciphertextBlob
        #expect(text(try t.eu.engine.decrypt(ciphertextBlob: sealed, caller: t.eu.caller).plaintext) == "from ap")
    }

    @Test func aHandoverUndoneWhileADeploymentIsDownReachesItWhenItIsBack() throws {
        let t = try Trio()
        let keyID = try t.key()
        _ = try t.us.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: t.caller(Self.usRegion))
        for (_, link) in t.links { link.connect(nil, peer: "ap") }  // ap is down
        try t.eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: t.eu.caller)
        _ = t.eu.engine.synchronizePeers()  // us refuses: its copy is pending deletion
        t.us.clock.advance(days: 8)
        _ = t.us.engine.synchronizePeers()  // tells eu (ap is down): eu takes the primary back, epoch 2
        for (name, link) in t.links where name != "ap" { link.connect(t.ap.engine, peer: "ap") }
        t.settle()
        #expect(throws: KMSError.notFound) { try t.us.engine.describeKey(keyID: keyID, caller: t.caller(Self.usRegion)) }
        let atAp = try t.ap.engine.describeKey(keyID: keyID, caller: t.caller("ap-south-1")).keyMetadata.multiRegionConfiguration
        #expect(atAp?.primaryKey.region == "eu-west-1" && atAp?.replicaKeys.map(\.region) == ["ap-south-1"])
        _ = try t.eu.engine.rotateKeyOnDemand(keyID: keyID, caller: t.eu.caller)
        t.settle()
        let sealed = try t.eu.engine.encrypt(keyID: keyID, plaintext: secret("v2"), caller: t.eu.caller).ciphertextBlob
        #expect(text(try t.ap.engine.decrypt(ciphertextBlob: sealed, caller: t.caller("ap-south-1")).plaintext) == "v2")
    }

    @Test func threeDeploymentsSettleWhenAHandoverTargetIsDeleted() throws {
        let t = try Trio()
        let (eu, us, ap) = (t.eu, t.us, t.ap)
        func caller(_ region: String) -> Caller { t.caller(region) }
        let keyID = try t.key()

        // The handover to us reaches ap, not us: us's copy is pending deletion and refuses it.
        _ = try us.engine.scheduleKeyDeletion(keyID: keyID, pendingWindowInDays: 7, caller: caller(Self.usRegion))
        try eu.engine.updatePrimaryRegion(keyID: keyID, primaryRegion: Self.usRegion, caller: eu.caller)
        #expect(eu.engine.synchronizePeers() == (1, 1))
        #expect(try ap.engine.describeKey(keyID: keyID, caller: caller("ap-south-1")).keyMetadata.multiRegionConfiguration?.primaryKey.region == Self.usRegion)

        // us deletes its copy and tells both: eu takes the primary back, and ap, whose primary is
        // gone, takes eu's newer epoch.
        us.clock.advance(days: 8)
        #expect(us.engine.synchronizePeers() == (2, 0))
        #expect(eu.engine.synchronizePeers() == (1, 0))
        let atAp = try ap.engine.describeKey(keyID: keyID, caller: caller("ap-south-1")).keyMetadata.multiRegionConfiguration
        #expect(atAp?.primaryKey.region == "eu-west-1" && atAp?.replicaKeys.map(\.region) == ["ap-south-1"])
        #expect(try eu.engine.describeKey(keyID: keyID, caller: eu.caller).keyMetadata.keyState == .enabled)
        _ = try eu.engine.rotateKeyOnDemand(keyID: keyID, caller: eu.caller)
        #expect(eu.engine.synchronizePeers() == (1, 0))
        let sealed = try eu.engine.encrypt(keyID: keyID, plaintext: secret("after all that"), caller: eu.caller).ciphertextBlob
        #expect(text(try ap.engine.decrypt(ciphertextBlob: sealed, caller: caller("ap-south-1")).plaintext) == "after all that")
    }

    /// An SM2 key with d = n − 1 (Sign loops forever on it in OpenSSL), as a peer could send it.
    @Test func aKeyPairThatIsNotSoundIsRefused() throws {
        let p = try Pair()
        func tlv(_ tag: UInt8, _ body: [UInt8]) -> [UInt8] { [tag] + (body.count < 128 ? [UInt8(body.count)] : [0x81, UInt8(body.count)]) + body }
        let orderMinusOne = hexBytes("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54122")
        let algorithm = tlv(0x30, tlv(0x06, hexBytes("2a8648ce3d0201")) + tlv(0x06, hexBytes("2a811ccf5501822d")))
        let der = tlv(0x30, tlv(0x02, [0]) + algorithm + tlv(0x04, tlv(0x30, tlv(0x02, [1]) + tlv(0x04, orderMinusOne))))
        var request = CreateKeyRequest()
        request.multiRegion = true
        request.keySpec = .sm2
        request.keyUsage = .signVerify
        let keyID = try p.eu.engine.createKey(request, caller: p.eu.caller).keyMetadata.keyId
        var record = KMSEngine.sharedPart(of: try #require(p.eu.engine.state.withLock { $0.keys.all(keyID).first?.record }))
        record.keyID = "mrk-" + String(repeating: "5e", count: 16)
        let policy = KeyPolicies.defaultPolicy(account: record.account)
        #expect(throws: KMSError.validation) {
            try p.us.engine.receivePeerMessage(try Self.forged(record, regions: ["eu-west-1", Self.usRegion], material: [1: SecretBytes(copying: der)],
                                                               replicas: [Self.usRegion: .init(description: "", policy: policy, tags: [])]), from: "eu")
        }
    }

    func hexBytes(_ text: String) -> [UInt8] {
        stride(from: 0, to: text.count, by: 2).map { UInt8(text.dropFirst($0).prefix(2), radix: 16)! }
    }
}
