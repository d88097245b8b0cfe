import CPKCS11
import KMSFSCrypto
import Synchronization

/// The process's logins to tokens. PKCS#11 logs an application in to a whole token, not to a
/// session: once one caller has logged in, C_Login answers CKR_USER_ALREADY_LOGGED_IN to anyone
/// without looking at the PIN, and a C_Logout logs everyone out. So kmsd logs in once per token,
/// checks every later PIN itself (a keyed digest of the PIN that logged in, compared in constant
/// time), counts who uses the login, and logs out when the last one is done.
enum PKCS11Logins {
    struct Key: Hashable {
        var module: String
        var slot: CK_SLOT_ID
    }

    private struct Entry {
        var pinDigest: [UInt8]
        var references: Int
        /// The session the login was made on, kept for the logout.
        var session: CK_SESSION_HANDLE
    }

    private static let entries = Mutex<[Key: Entry]>([:])
    /// A per-process key for PIN digests: they are never stored nor comparable across processes.
    private static let digestKey: [UInt8] = (try? SecureRandom.bytes(count: 32)) ?? Array(repeating: 0, count: 32)

    private static func digest(_ pin: SecretBytes) -> [UInt8] {
        pin.withUnsafeBytes { HMAC.sha256(key: digestKey, message: $0) }
    }

    /// Logs in to the token at `slot` with `pin`, or joins the login already made with the same PIN.
    /// - Throws: ``PKCS11Error`` `.pinIncorrect` for another PIN (the token is not asked again).
    static func acquire(_ module: PKCS11Module, slot: CK_SLOT_ID, pin: SecretBytes) throws(PKCS11Error) {
        let key = Key(module: module.path, slot: slot)
        let pinDigest = digest(pin)
        let outcome: Result<Void, PKCS11Error> = entries.withLock { entries in
            if var entry = entries[key] {
                guard ConstantTime.equal(entry.pinDigest, pinDigest) else {
                    return .failure(PKCS11Error(.pinIncorrect, "the PIN is not the one this token is logged in with"))
                }
                entry.references += 1
                entries[key] = entry
                return .success(())
            }
            var session: CK_SESSION_HANDLE = 0
            var rv = module.functions.pointee.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nil, nil, &session)
            guard rv == CKR_OK else { return .failure(PKCS11Error(rv, "C_OpenSession")) }
            rv = login(module, session, pin)
            if rv == CKR_USER_ALREADY_LOGGED_IN {
                // Logged in by nobody kmsd knows of: log out so that this PIN is checked.
                _ = module.functions.pointee.C_Logout(session)
                rv = login(module, session, pin)
            }
            guard rv == CKR_OK else {
                _ = module.functions.pointee.C_CloseSession(session)
                return .failure(PKCS11Error(rv, "C_Login"))
            }
            entries[key] = Entry(pinDigest: pinDigest, references: 1, session: session)
            return .success(())
        }
        try outcome.get()
    }

    /// One user of the login is done; the last logs the token out.
    static func release(_ module: PKCS11Module, slot: CK_SLOT_ID) {
        entries.withLock { entries in
            let key = Key(module: module.path, slot: slot)
            guard var entry = entries[key] else { return }
            entry.references -= 1
            if entry.references > 0 {
                entries[key] = entry
                return
            }
            entries[key] = nil
            _ = module.functions.pointee.C_Logout(entry.session)
            _ = module.functions.pointee.C_CloseSession(entry.session)
        }
    }

    private static func login(_ module: PKCS11Module, _ session: CK_SESSION_HANDLE, _ pin: SecretBytes) -> CK_RV {
        pin.withUnsafeBytes { bytes in
            module.functions.pointee.C_Login(session, CKU_USER, UnsafeMutablePointer(mutating: bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)),
                                             CK_ULONG(bytes.count))
        }
    }
}
