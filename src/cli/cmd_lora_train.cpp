// optiq lora train: a placeholder until the training command lands (issue 17); its author replaces
// this file.
#include <cstdio>

#include "cli/commands.h"

namespace optiq::cli {

int cmd_lora_train(int argc, char** argv) {
  std::fprintf(stderr, "optiq lora train: not yet implemented\n");
  return 1;
}

}  // namespace optiq::cli
