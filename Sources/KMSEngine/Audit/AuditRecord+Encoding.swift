import KMSJSON

extension AuditRecord {
    /// The record's canonical bytes: JSON with keys in sorted order, no insignificant space, time
    /// in milliseconds since 1970 — what the chain MAC covers and what the store keeps.
    ///
    /// Written by hand because it is on the audit writer's path for every call: Foundation's
    /// JSONEncoder took most of the per-record cost here. JSONDecoder reads it back
    /// (`AuditChain.decoder`), and a test checks that the two agree.
    public var canonicalJSON: [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(320)
        out.append(UInt8(ascii: "{"))
        var first = true
        func key(_ name: StaticString) {
            if !first { out.append(UInt8(ascii: ",")) }
            first = false
            out.append(UInt8(ascii: "\""))
            out.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
            out.append(contentsOf: [UInt8(ascii: "\""), UInt8(ascii: ":")])
        }
        // Keys in sorted order: account, decision, encryptionContext, errorCode, keyARN, note, operation,
        // principal, region, requestID, time, userAgent.
        key("account"); out.appendJSONString(account)
        if let decision { key("decision"); out.appendJSONString(decision) }
        if let encryptionContext {
            key("encryptionContext")
            out.append(UInt8(ascii: "{"))
            for (index, (name, value)) in encryptionContext.sorted(by: { $0.key < $1.key }).enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.appendJSONString(name)
                out.append(UInt8(ascii: ":"))
                out.appendJSONString(value)
            }
            out.append(UInt8(ascii: "}"))
        }
        if let errorCode { key("errorCode"); out.appendJSONString(errorCode) }
        if let keyARN { key("keyARN"); out.appendJSONString(keyARN) }
        if let note { key("note"); out.appendJSONString(note) }
        key("operation"); out.appendJSONString(operation)
        key("principal"); out.appendJSONString(principal)
        key("region"); out.appendJSONString(region)
        key("requestID"); out.appendJSONString(requestID)
        key("time"); out.append(contentsOf: String(Int64((time.timeIntervalSince1970 * 1000).rounded())).utf8)
        if let userAgent { key("userAgent"); out.appendJSONString(userAgent) }
        out.append(UInt8(ascii: "}"))
        return out
    }
}
