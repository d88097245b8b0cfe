import CPKCS11
import KMSFSCrypto
import Synchronization

/// One logged-in PKCS#11 token holding AES-256 keys that never leave it.
///
/// Keys are token objects found by their label (kmsd names them after what they back: a KMS key
/// ID, or an XKS key ID). They are made sensitive and not extractable, so even the token's user
/// cannot read them out; kmsd only asks the token to seal and open with them (AES-GCM, a 96-bit
/// IV kmsd chooses, a 128-bit tag). Sessions are pooled: one per concurrent call, all sharing the
/// login (PKCS#11 logins are per token and application, not per session).
public final class PKCS11Token: Sendable {
    public static let ivByteCount = 12
    public static let tagByteCount = 16

    let module: PKCS11Module
    let slot: CK_SLOT_ID
    public let label: String
    /// Idle sessions, how many are lent out, and whether the token is closed: a session lent out
    /// when it closes is closed when it comes back, and the last one back ends the login.
    private struct Sessions {
        var idle: [CK_SESSION_HANDLE] = []
        var lent = 0
        var closed = false
        var released = false
    }
    private let sessions = Mutex(Sessions())
    private let handles = Mutex<[String: CK_OBJECT_HANDLE]>([:])

    /// Loads `modulePath`, finds the token labelled `tokenLabel` and logs in as its user (or
    /// joins this process's login to it, if `pin` is the PIN it was made with).
    /// - Throws: ``PKCS11Error`` (.tokenNotFound, .pinIncorrect, .pinLocked, ...).
    public init(modulePath: String, tokenLabel: String, pin: SecretBytes) throws(PKCS11Error) {
        module = try PKCS11Module.load(modulePath)
        guard let slot = try module.slot(tokenLabel: tokenLabel) else {
            throw PKCS11Error(.tokenNotFound, "no initialized token labelled \(tokenLabel) in \(modulePath)")
        }
        self.slot = slot
        label = tokenLabel
        try PKCS11Logins.acquire(module, slot: slot, pin: pin)
    }

    /// Closes this token's sessions and leaves the login (the token is logged out when nobody
    /// else in the process uses it); calls after this fail.
    public func close() {
        let (idle, release) = sessions.withLock { state -> ([CK_SESSION_HANDLE], Bool) in
            guard !state.closed else { return ([], false) }
            state.closed = true
            let idle = state.idle
            state.idle = []
            let release = state.lent == 0 && !state.released
            if release { state.released = true }
            return (idle, release)
        }
        for session in idle { _ = module.functions.pointee.C_CloseSession(session) }
        if release { PKCS11Logins.release(module, slot: slot) }
        handles.withLock { $0 = [:] }
    }

    deinit { close() }

    private func openSession() throws(PKCS11Error) -> CK_SESSION_HANDLE {
        var session: CK_SESSION_HANDLE = 0
        let rv = module.functions.pointee.C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nil, nil, &session)
        guard rv == CKR_OK else { throw PKCS11Error(rv, "C_OpenSession") }
        return session
    }

    /// Runs `body` with a session of its own, returned to the pool after (or closed, if the token
    /// closed meanwhile).
    private func withSession<T>(_ body: (CK_SESSION_HANDLE) throws(PKCS11Error) -> T) throws(PKCS11Error) -> T {
        let borrowed: CK_SESSION_HANDLE?? = sessions.withLock { state in
            guard !state.closed else { return nil }
            state.lent += 1
            return .some(state.idle.popLast())
        }
        guard let pooled = borrowed else { throw PKCS11Error(.failure, "the token \(label) is disconnected") }
        let session: CK_SESSION_HANDLE
        if let pooled {
            session = pooled
        } else {
            do { session = try openSession() } catch {
                giveBack(nil)
                throw error
            }
        }
        defer { giveBack(session) }
        return try body(session)
    }

    private func giveBack(_ session: CK_SESSION_HANDLE?) {
        let (close, release) = sessions.withLock { state -> (Bool, Bool) in
            state.lent -= 1
            guard state.closed else {
                if let session { state.idle.append(session) }
                return (false, false)
            }
            let release = state.lent == 0 && !state.released
            if release { state.released = true }
            return (true, release)
        }
        if close, let session { _ = module.functions.pointee.C_CloseSession(session) }
        if release { PKCS11Logins.release(module, slot: slot) }
    }

    /// Makes a new AES-256 key labelled `keyLabel` inside the token.
    public func generateKey(label keyLabel: String) throws(PKCS11Error) {
        if try findKey(keyLabel) != nil { throw PKCS11Error(.failure, "the token already holds a key labelled \(keyLabel)") }
        let handle: CK_OBJECT_HANDLE = try withSession { session throws(PKCS11Error) in
            var yes = CK_BBOOL(CK_TRUE), no = CK_BBOOL(CK_FALSE)
            var valueLength = CK_ULONG(32)
            var labelBytes = Array(keyLabel.utf8)
            var mechanism = CK_MECHANISM(mechanism: CKM_AES_KEY_GEN, pParameter: nil, ulParameterLen: 0)
            var handle: CK_OBJECT_HANDLE = 0
            let rv = withUnsafeMutablePointer(to: &yes) { yes in
                withUnsafeMutablePointer(to: &no) { no in
                    withUnsafeMutablePointer(to: &valueLength) { valueLength in
                        labelBytes.withUnsafeMutableBytes { labelBytes in
                            let size = CK_ULONG(MemoryLayout<CK_BBOOL>.size)
                            var template = [
                                CK_ATTRIBUTE(type: CKA_TOKEN, pValue: yes, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_PRIVATE, pValue: yes, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_SENSITIVE, pValue: yes, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_EXTRACTABLE, pValue: no, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_ENCRYPT, pValue: yes, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_DECRYPT, pValue: yes, ulValueLen: size),
                                CK_ATTRIBUTE(type: CKA_VALUE_LEN, pValue: valueLength, ulValueLen: CK_ULONG(MemoryLayout<CK_ULONG>.size)),
                                CK_ATTRIBUTE(type: CKA_LABEL, pValue: labelBytes.baseAddress, ulValueLen: CK_ULONG(labelBytes.count)),
                            ]
                            return module.functions.pointee.C_GenerateKey(session, &mechanism, &template, CK_ULONG(template.count), &handle)
                        }
                    }
                }
            }
            guard rv == CKR_OK else { throw PKCS11Error(rv, "C_GenerateKey") }
            return handle
        }
        handles.withLock { $0[keyLabel] = handle }
    }

    /// Whether the token holds an AES key labelled `keyLabel`.
    public func hasKey(label keyLabel: String) throws(PKCS11Error) -> Bool { try findKey(keyLabel) != nil }

    /// Destroys the key labelled `keyLabel`, if the token holds it.
    public func destroyKey(label keyLabel: String) throws(PKCS11Error) {
        guard let handle = try findKey(keyLabel) else { return }
        try withSession { session throws(PKCS11Error) in
            let rv = module.functions.pointee.C_DestroyObject(session, handle)
            guard rv == CKR_OK || rv == CKR_OBJECT_HANDLE_INVALID else { throw PKCS11Error(rv, "C_DestroyObject") }
        }
        handles.withLock { _ = $0.removeValue(forKey: keyLabel) }
    }

    private func findKey(_ keyLabel: String) throws(PKCS11Error) -> CK_OBJECT_HANDLE? {
        if let handle = handles.withLock({ $0[keyLabel] }) { return handle }
        let found: CK_OBJECT_HANDLE? = try withSession { session throws(PKCS11Error) in
            var keyClass = CKO_SECRET_KEY, keyType = CKK_AES
            var labelBytes = Array(keyLabel.utf8)
            var handle: CK_OBJECT_HANDLE = 0
            var count: CK_ULONG = 0
            var rv = withUnsafeMutablePointer(to: &keyClass) { keyClass in
                withUnsafeMutablePointer(to: &keyType) { keyType in
                    labelBytes.withUnsafeMutableBytes { labelBytes in
                        let size = CK_ULONG(MemoryLayout<CK_ULONG>.size)
                        var template = [
                            CK_ATTRIBUTE(type: CKA_CLASS, pValue: keyClass, ulValueLen: size),
                            CK_ATTRIBUTE(type: CKA_KEY_TYPE, pValue: keyType, ulValueLen: size),
                            CK_ATTRIBUTE(type: CKA_LABEL, pValue: labelBytes.baseAddress, ulValueLen: CK_ULONG(labelBytes.count)),
                        ]
                        return module.functions.pointee.C_FindObjectsInit(session, &template, CK_ULONG(template.count))
                    }
                }
            }
            guard rv == CKR_OK else { throw PKCS11Error(rv, "C_FindObjectsInit") }
            rv = module.functions.pointee.C_FindObjects(session, &handle, 1, &count)
            _ = module.functions.pointee.C_FindObjectsFinal(session)
            guard rv == CKR_OK else { throw PKCS11Error(rv, "C_FindObjects") }
            return count == 1 ? handle : nil
        }
        if let found { handles.withLock { $0[keyLabel] = found } }
        return found
    }

    private func key(_ keyLabel: String) throws(PKCS11Error) -> CK_OBJECT_HANDLE {
        guard let handle = try findKey(keyLabel) else { throw PKCS11Error(.keyNotFound, "the token holds no key labelled \(keyLabel)") }
        return handle
    }

    /// Random bytes from the token's generator.
    public func random(count: Int) throws(PKCS11Error) -> SecretBytes {
        var bytes = [UInt8](repeating: 0, count: count)
        try withSession { session throws(PKCS11Error) in
            let rv = bytes.withUnsafeMutableBufferPointer { module.functions.pointee.C_GenerateRandom(session, $0.baseAddress, CK_ULONG(count)) }
            guard rv == CKR_OK else { throw PKCS11Error(rv, "C_GenerateRandom") }
        }
        return SecretBytes(wiping: &bytes)
    }

    /// AES-GCM under the token's key: returns the IV it used (random, drawn here) and
    /// ciphertext ‖ tag.
    public func seal(label keyLabel: String, plaintext: SecretBytes, additionalData: [UInt8]) throws(PKCS11Error) -> (iv: [UInt8], sealed: [UInt8]) {
        let handle = try key(keyLabel)
        let iv: [UInt8]
        do { iv = try SecureRandom.bytes(count: Self.ivByteCount) } catch { throw PKCS11Error(.failure, "no randomness for the IV: \(error)") }
        let sealed = try gcm(encrypt: true, handle: handle, iv: iv, additionalData: additionalData, capacity: plaintext.count + Self.tagByteCount) {
            (call: (UnsafeMutableRawBufferPointer) -> CK_RV) in plaintext.withUnsafeBytes { call(UnsafeMutableRawBufferPointer(mutating: $0)) }
        }
        return (iv, sealed)
    }

    /// Opens ciphertext ‖ tag sealed by ``seal(label:plaintext:additionalData:)``.
    /// - Throws: ``PKCS11Error`` with kind `.authenticationFailed` if it does not open.
    public func open(label keyLabel: String, iv: [UInt8], sealed: [UInt8], additionalData: [UInt8]) throws(PKCS11Error) -> SecretBytes {
        guard iv.count == Self.ivByteCount, sealed.count >= Self.tagByteCount else {
            throw PKCS11Error(.authenticationFailed, "the ciphertext is malformed")
        }
        let handle = try key(keyLabel)
        var input = sealed
        var plain = try gcm(encrypt: false, handle: handle, iv: iv, additionalData: additionalData, capacity: sealed.count) {
            (call: (UnsafeMutableRawBufferPointer) -> CK_RV) in input.withUnsafeMutableBytes { call($0) }
        }
        defer { plain.withUnsafeMutableBytes { SecretBytes.wipe($0) } }
        return SecretBytes(copying: plain)
    }

    /// One C_EncryptInit/C_Encrypt (or decrypt) with CKM_AES_GCM; `input` lends the input bytes.
    private func gcm(encrypt: Bool, handle: CK_OBJECT_HANDLE, iv: [UInt8], additionalData: [UInt8], capacity: Int,
                     input: ((UnsafeMutableRawBufferPointer) -> CK_RV) -> CK_RV) throws(PKCS11Error) -> [UInt8] {
        try withSession { session throws(PKCS11Error) in
            var output = [UInt8](repeating: 0, count: capacity + Self.tagByteCount)
            var outputCount = CK_ULONG(output.count)
            var ivBytes = iv, aad = additionalData
            let rv: CK_RV = ivBytes.withUnsafeMutableBufferPointer { ivPointer in
                aad.withUnsafeMutableBufferPointer { aadPointer in
                    var parameters = CK_GCM_PARAMS(pIv: ivPointer.baseAddress, ulIvLen: CK_ULONG(ivPointer.count), ulIvBits: CK_ULONG(ivPointer.count * 8),
                                                   pAAD: aadPointer.baseAddress, ulAADLen: CK_ULONG(aadPointer.count), ulTagBits: CK_ULONG(Self.tagByteCount * 8))
                    return withUnsafeMutablePointer(to: &parameters) { parameters in
                        var mechanism = CK_MECHANISM(mechanism: CKM_AES_GCM, pParameter: UnsafeMutableRawPointer(parameters),
                                                     ulParameterLen: CK_ULONG(MemoryLayout<CK_GCM_PARAMS>.size))
                        let f = module.functions.pointee
                        let initialized = encrypt ? f.C_EncryptInit(session, &mechanism, handle) : f.C_DecryptInit(session, &mechanism, handle)
                        guard initialized == CKR_OK else { return initialized }
                        return input { bytes in
                            output.withUnsafeMutableBufferPointer { out in
                                let data = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
                                return encrypt
                                    ? f.C_Encrypt(session, data, CK_ULONG(bytes.count), out.baseAddress, &outputCount)
                                    : f.C_Decrypt(session, data, CK_ULONG(bytes.count), out.baseAddress, &outputCount)
                            }
                        }
                    }
                }
            }
            guard rv == CKR_OK else {
                output.withUnsafeMutableBytes { SecretBytes.wipe($0) }
                var error = PKCS11Error(rv, encrypt ? "C_Encrypt" : "C_Decrypt")
                if !encrypt, error.kind == .failure { error = PKCS11Error(.authenticationFailed, error.description) }
                throw error
            }
            let count = Int(outputCount)
            if count < output.count { output.withUnsafeMutableBytes { SecretBytes.wipe(UnsafeMutableRawBufferPointer(rebasing: $0[count...])) } }
            output.removeLast(output.count - count)
            return output
        }
    }
}
