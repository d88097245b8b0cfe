import CPKCS11
import Foundation
import Synchronization

/// A PKCS#11 module (a token's shared library, e.g. SoftHSM2's), loaded once per process.
///
/// A module is initialized once for the whole process (C_Initialize is not per token), with
/// the module's own OS locking, and never unloaded: tokens opened from it may live as long as kmsd.
final class PKCS11Module: @unchecked Sendable {
    // @unchecked: `functions` points into the module's static table, valid while it is loaded
    // (forever); the module serializes calls itself (CKF_OS_LOCKING_OK).
    let path: String
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>

    private static let loaded = Mutex<[String: PKCS11Module]>([:])

    /// The module at `path`, loaded and initialized on first use.
    static func load(_ path: String) throws(PKCS11Error) -> PKCS11Module {
        let result: Result<PKCS11Module, PKCS11Error> = loaded.withLock { modules in
            if let module = modules[path] { return .success(module) }
            do {
                let module = try PKCS11Module(path: path)
                modules[path] = module
                return .success(module)
            } catch let error as PKCS11Error {
                return .failure(error)
            } catch {
                return .failure(PKCS11Error(.failure, "\(error)"))
            }
        }
        return try result.get()
    }

    private init(path: String) throws(PKCS11Error) {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "unknown error"
            throw PKCS11Error(.moduleNotLoaded, "cannot load the PKCS#11 module \(path): \(reason)")
        }
        guard let symbol = dlsym(handle, "C_GetFunctionList") else {
            throw PKCS11Error(.moduleNotLoaded, "\(path) is not a PKCS#11 module (no C_GetFunctionList)")
        }
        let getFunctionList = unsafeBitCast(symbol, to: kmsfs_get_function_list.self)
        var list: UnsafeMutablePointer<CK_FUNCTION_LIST>?
        var rv = getFunctionList(&list)
        guard rv == CKR_OK, let list else { throw PKCS11Error(rv, "C_GetFunctionList") }
        self.path = path
        self.functions = list
        var arguments = CK_C_INITIALIZE_ARGS()
        arguments.flags = CKF_OS_LOCKING_OK
        rv = withUnsafeMutablePointer(to: &arguments) { list.pointee.C_Initialize(UnsafeMutableRawPointer($0)) }
        guard rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED else { throw PKCS11Error(rv, "C_Initialize") }
    }

    /// The slot holding the initialized token labelled `label`, if any.
    func slot(tokenLabel label: String) throws(PKCS11Error) -> CK_SLOT_ID? {
        var count: CK_ULONG = 0
        var rv = functions.pointee.C_GetSlotList(CK_BBOOL(CK_TRUE), nil, &count)
        guard rv == CKR_OK else { throw PKCS11Error(rv, "C_GetSlotList") }
        var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
        rv = functions.pointee.C_GetSlotList(CK_BBOOL(CK_TRUE), &slots, &count)
        guard rv == CKR_OK else { throw PKCS11Error(rv, "C_GetSlotList") }
        for slot in slots.prefix(Int(count)) {
            var info = CK_TOKEN_INFO()
            guard functions.pointee.C_GetTokenInfo(slot, &info) == CKR_OK,
                  info.flags & CKF_TOKEN_INITIALIZED != 0 else { continue }
            let text = withUnsafeBytes(of: info.label) { String(decoding: $0, as: UTF8.self) }
            if text.trimmingCharacters(in: .whitespaces) == label { return slot }
        }
        return nil
    }
}
