#include <filesystem>
#include <memory>

#include "cli/flags.h"
#include "io/hf_hub.h"

namespace optiq::cli {

namespace fs = std::filesystem;

Result<std::string> bundled_path(const std::string& rel, const std::string& instead) {
  // The executable's directory, not the working directory or the source tree: build/optiq and an
  // installed bin/optiq both find their data one level up, from wherever they are run.
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return Status::IOError("/proc/self/exe: " + ec.message() + "; " + instead);
  const fs::path cand = exe.parent_path().parent_path() / rel;
  if (!fs::exists(cand, ec))
    return Status::NotFound(cand.string() + ": not found (the bundled " + rel + ", looked up as ../" + rel +
                            " from the executable " + exe.string() + "); " + instead);
  return cand.string();
}

Result<std::string> resolve_model_arg(const std::string& arg, bool offline) {
  HubOptions o = hub_options_from_env();
  o.offline |= offline;
  return resolve_model_path(arg, o);
}

Result<std::string> model_dir_flag(const Flags& f) {
  if (f.has("--model")) return resolve_model_arg(f.str("--model"), f.has("--offline"));
  return bundled_path("models/dhara-brown-small", "pass --model DIR");
}

Result<std::unique_ptr<Model>> adapted_model(const Model& base, const std::string& adapter_dir) {
  OPTIQ_ASSIGN_OR_RETURN(LoraAdapter ad, load_lora_adapter(adapter_dir));
  OPTIQ_RETURN_IF_ERROR(validate_adapter(base, ad).WithContext("--adapter " + adapter_dir));
  return with_adapter(base, std::make_shared<const LoraAdapter>(std::move(ad)));
}

}  // namespace optiq::cli
