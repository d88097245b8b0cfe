/// What a file's gaps are made of when it grows past its end (truncate up, a write beyond the end).
///
/// An all-zero stored chunk carries no tag that could tell a genuine hole from a chunk an
/// attacker overwrote with zeros, so reading zeros there is a choice a volume makes once, at
/// `kmsfs init`, and records in its authenticated configuration.
public enum HolePolicy: String, Sendable, Codable, Equatable {
    /// Gaps are sealed chunks of zeros, authenticated like any other: a chunk zeroed behind the
    /// mount's back fails authentication. Growing a file by N bytes writes N bytes (plus tags).
    case sealed
    /// Gaps stay holes in the backing file (a 10 GiB truncate writes at most two chunks) and a
    /// full non-final chunk stored as zeros reads as zeros without authentication: whoever can
    /// write the backing file can zero any such chunk unnoticed (docs/FORMAT.md, "Holes").
    case sparse
}
