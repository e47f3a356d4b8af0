#include <unistd.h>

#include <filesystem>

#include "cli/flags.h"

namespace optiq::cli {

std::string default_model_dir() {
  namespace fs = std::filesystem;
  // Next to the binary first (build/optiq → ../models), then the source tree it was built from.
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path cand = exe.parent_path().parent_path() / "models" / "dhara-brown-tiny";
    if (fs::exists(cand / "config.json", ec)) return cand.string();
  }
  return std::string(OPTIQ_SOURCE_DIR) + "/models/dhara-brown-tiny";
}

}  // namespace optiq::cli
