import KMSEngine
import KMSJSON

extension KMSProtocol {
    /// GenerateRandom.
    static let generateRandom: Operation = { m, caller, engine in
        guard let count = try m.int("NumberOfBytes") else { throw Members.missing("NumberOfBytes") }
        let store = try m.string("CustomKeyStoreId")
        try m.finish()
        return .object([("Plaintext", .secret(try engine.generateRandom(numberOfBytes: count, customKeyStoreID: store, caller: caller)))])
    }
}
