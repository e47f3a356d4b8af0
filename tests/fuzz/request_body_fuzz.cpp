// libFuzzer target: HTTP request bodies of the OpenAI and Anthropic APIs, parsed, resolved and formatted. Build with clang and -DOPTIQ_FUZZ=ON
// (scripts/fuzz.sh); run e.g. ./build-fuzz/request_body_fuzz -max_total_time=600 -dict=tests/fuzz/json.dict tests/fuzz/corpus/request_body
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::request_body(data, size);
  return 0;
}
