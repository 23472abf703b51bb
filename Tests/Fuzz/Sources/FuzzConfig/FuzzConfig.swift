import CLibFuzzer

@testable import JunctionCore

/// The config loader on fuzzed YAML: never traps; a config comes back exactly when there is no
/// error, and every problem names this file with a line and column of at least 1.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let yaml = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    let outcome = ConfigLoader.parse(yaml: yaml, file: "fuzz.yaml", baseDirectory: "/nonexistent")
    precondition((outcome.config == nil) == !outcome.errors.isEmpty, "a config with errors, or none without")
    for diagnostic in outcome.diagnostics {
        if let location = diagnostic.location {
            precondition(location.file == "fuzz.yaml" && location.line >= 1 && location.column >= 1, "\(diagnostic)")
        }
    }
    return 0
}

/// SwiftPM links an executable's entry point as `FuzzConfig_main`: hand over to libFuzzer's driver.
@_cdecl("FuzzConfig_main")
public func fuzzerMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    JunctionFuzzMain(argc, argv, fuzz)
}
