// libFuzzer target: config.json (+ "\\0" generation_config.json) through the model loaders' config parsing. Build with clang and -DOPTIQ_FUZZ=ON
// (scripts/fuzz.sh); run e.g. ./build-fuzz/model_config_fuzz -max_total_time=600 -dict=tests/fuzz/json.dict tests/fuzz/corpus/model_config
#include "tests/fuzz/fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  optiq::fuzz::model_config(data, size);
  return 0;
}
