// libFuzzer target: safetensors header validation and tensor views over the bytes. Build with clang and -DOPTIQ_FUZZ=ON
// (scripts/fuzz.sh); run e.g. ./build-fuzz/safetensors_fuzz -max_total_time=600 -dict=tests/fuzz/safetensors.dict tests/fuzz/corpus/safetensors
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::safetensors(data, size);
  return 0;
}
