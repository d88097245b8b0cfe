internal import COpenSSL

/// scrypt (RFC 7914), the memory-hard key derivation that turns a passphrase into a key.
///
/// Memory-hard so that guessing passphrases on GPUs or ASICs costs memory per guess, not only
/// time; OpenSSL 3.0 (this machine's) has scrypt but not Argon2.
public enum Scrypt {
    /// The cost: `n` (a power of two) blocks of `128 · r` bytes, `p` independent lanes.
    public struct Cost: Sendable, Equatable, Codable {
        public var n: UInt64
        public var r: UInt64
        public var p: UInt64
        public init(n: UInt64, r: UInt64, p: UInt64) {
            self.n = n
            self.r = r
            self.p = p
        }

        /// 2^17 · 8 · 128 bytes = 128 MiB and about half a second here: a guess costs an attacker
        /// as much, and a mount pays it once.
        public static let interactive = Cost(n: 1 << 17, r: 8, p: 1)

        /// The memory one derivation takes, or nil when it overflows or exceeds `limit` (1 GiB).
        public func memory(limit: UInt64 = 1 << 30) -> UInt64? {
            let (block, o1) = r.multipliedReportingOverflow(by: 128)
            let (blocks, o2) = block.multipliedReportingOverflow(by: n)
            let (lanes, o3) = block.multipliedReportingOverflow(by: p)
            guard !o1, !o2, !o3 else { return nil }
            let (total, o4) = blocks.addingReportingOverflow(lanes)
            return !o4 && total <= limit ? total : nil
        }

        /// Costs a stored record may name: `n` a power of two from 2^10, at most 1 GiB of memory
        /// and 8 times ``interactive``'s work (n·r·p), `p` at most 16. A record outside them is
        /// refused, so a planted one cannot make a mount spin or allocate for minutes.
        public var isAcceptable: Bool {
            guard n >= 1 << 10, n.nonzeroBitCount == 1, (1...32).contains(r), (1...16).contains(p), memory() != nil else { return false }
            let (nr, o1) = n.multipliedReportingOverflow(by: r)
            let (work, o2) = nr.multipliedReportingOverflow(by: p)
            return !o1 && !o2 && work <= 8 * Self.interactive.n * Self.interactive.r * Self.interactive.p
        }
    }

    /// Derives `byteCount` bytes from `passphrase` and `salt` into a new secret.
    /// - Throws: ``CryptoError/openSSL(operation:reason:)`` if OpenSSL refuses the cost.
    public static func derive(passphrase: SecretBytes, salt: [UInt8], cost: Cost, byteCount: Int) throws(CryptoError) -> SecretBytes {
        guard cost.isAcceptable, let memory = cost.memory() else {
            throw CryptoError.openSSL(operation: "EVP_PBE_scrypt", reason: "unacceptable cost N=\(cost.n) r=\(cost.r) p=\(cost.p)")
        }
        return try SecretBytes(count: byteCount) { (output) throws(CryptoError) in
            let ok = passphrase.withUnsafeBytes { pass in
                salt.withUnsafeBufferPointer { salt in
                    EVP_PBE_scrypt(pass.baseAddress?.assumingMemoryBound(to: CChar.self), pass.count,
                                   salt.baseAddress, salt.count, cost.n, cost.r, cost.p, memory + (1 << 20),
                                   output.baseAddress?.assumingMemoryBound(to: UInt8.self), output.count)
                }
            }
            guard ok == 1 else { throw CryptoError.fromOpenSSL("EVP_PBE_scrypt") }
        }
    }
}
