// libFuzzer target: arbitrary bytes through the image decoder, then the vision preprocessing. Build with clang and -DOPTIQ_FUZZ=ON
// (scripts/fuzz.sh); run e.g. ./build-fuzz/image_decode_fuzz -max_total_time=600 tests/fuzz/corpus/image_decode
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::image_decode(data, size);
  return 0;
}
