// libFuzzer's driver entry point (compiler-rt's FuzzerInterface.h), for fuzz targets whose
// `main` is SwiftPM's: they hand argc/argv and their test function over to it.
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*UserCb)(const uint8_t *Data, size_t Size));

// What every target's `<Target>_main` does: run libFuzzer's driver on `test`.
static inline int JunctionFuzzMain(int argc, char **argv, int (*test)(const uint8_t *Data, size_t Size)) {
    return LLVMFuzzerRunDriver(&argc, &argv, test);
}
