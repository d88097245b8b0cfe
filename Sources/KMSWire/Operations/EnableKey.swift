import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// EnableKey.
    static let enableKey = keyIDOnly { try $0.enableKey(keyID: $1, caller: $2) }
}
