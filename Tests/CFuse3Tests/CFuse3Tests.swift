import CFuse3
import Testing

/// The system-library module links libfuse3 and compiles its headers with the API version we chose.
@Suite struct CFuse3Tests {
    @Test func headersAndLibraryAgree() {
        #expect(CFuse3_use_version() == 312)
        let version = String(cString: fuse_pkgversion())
        #expect(version.hasPrefix("3."), "libfuse \(version)")
        #expect(fuse_version() >= 312)
    }
}
