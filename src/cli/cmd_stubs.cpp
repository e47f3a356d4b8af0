// Temporary: commands still being written. Removed as each lands.
#include <cstdio>

#include "cli/commands.h"

namespace optiq::cli {
int cmd_bench(int, char**) { std::fprintf(stderr, "bench: not yet available\n"); return 2; }
int cmd_init_random(int, char**) { std::fprintf(stderr, "init-random: not yet available\n"); return 2; }
}  // namespace optiq::cli
