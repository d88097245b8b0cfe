import CPKCS11

/// A failed PKCS#11 call, with the CKR_ code the module returned and what kmsd makes of it.
public struct PKCS11Error: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        case moduleNotLoaded, tokenNotFound, pinIncorrect, pinLocked, keyNotFound, authenticationFailed, failure
    }

    public let kind: Kind
    public let description: String

    init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }

    init(_ rv: CK_RV, _ function: String) {
        switch rv {
        case CKR_PIN_INCORRECT, CKR_PIN_LEN_RANGE, CKR_USER_PIN_NOT_INITIALIZED: kind = .pinIncorrect
        case CKR_PIN_LOCKED: kind = .pinLocked
        case CKR_KEY_HANDLE_INVALID, CKR_OBJECT_HANDLE_INVALID: kind = .keyNotFound
        case CKR_ENCRYPTED_DATA_INVALID, CKR_ENCRYPTED_DATA_LEN_RANGE: kind = .authenticationFailed
        case CKR_TOKEN_NOT_PRESENT, CKR_DEVICE_REMOVED: kind = .tokenNotFound
        default: kind = .failure
        }
        description = "\(function) failed: CKR 0x\(String(rv, radix: 16))"
    }
}
