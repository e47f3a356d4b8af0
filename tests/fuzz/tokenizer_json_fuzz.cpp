// libFuzzer target: tokenizer.json loading, encoding and decoding. Build with clang and -DOPTIQ_FUZZ=ON; run
// e.g. ./build-fuzz/tokenizer_json_fuzz -max_total_time=600 tests/fuzz/corpus/tokenizer_json
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::tokenizer_json(data, size);
  return 0;
}
