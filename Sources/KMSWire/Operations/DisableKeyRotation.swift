import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// DisableKeyRotation.
    static let disableKeyRotation = keyIDOnly { try $0.disableKeyRotation(keyID: $1, caller: $2) }
}
