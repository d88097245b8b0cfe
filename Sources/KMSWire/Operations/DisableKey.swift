import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DisableKey.
    static let disableKey = keyIDOnly { try $0.disableKey(keyID: $1, caller: $2) }
}
