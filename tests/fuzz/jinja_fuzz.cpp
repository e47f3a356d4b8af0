// libFuzzer target: chat-template parsing and rendering. Build with clang and -DOPTIQ_FUZZ=ON; run e.g.
// ./build-fuzz/jinja_fuzz -max_total_time=600 -dict=tests/fuzz/jinja.dict tests/fuzz/corpus/jinja
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::jinja_template(data, size);
  return 0;
}
