import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// An operation whose only member is KeyId and whose answer is `{}`.
    static func keyIDOnly(_ call: @escaping @Sendable (KMSEngine, String, Caller) throws -> Void) -> Operation {
        { members, caller, engine in
            let keyID = try members.requiredString("KeyId")
            try members.finish()
            try call(engine, keyID, caller)
            return .empty
        }
    }
}
