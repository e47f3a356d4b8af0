#include "io/model_dir.h"

#include <filesystem>
#include <fstream>
#include <sstream>

namespace optiq {

namespace fs = std::filesystem;

Result<nlohmann::json> read_json_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::NotFound(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return nlohmann::json::parse(ss.str());
  } catch (const nlohmann::json::parse_error& e) {
    return Status::Corruption(path + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  }
}

Result<std::shared_ptr<ModelDir>> ModelDir::open(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::NotFound(dir + ": not a model directory");
  auto md = std::make_shared<ModelDir>();
  md->path = dir;
  OPTIQ_ASSIGN_OR_RETURN(md->config, read_json_file((fs::path(dir) / "config.json").string()));
  if (!md->config.is_object()) return Status::Corruption(dir + "/config.json: not a JSON object");
  fs::path gen = fs::path(dir) / "generation_config.json";
  if (fs::exists(gen, ec)) {
    OPTIQ_ASSIGN_OR_RETURN(md->generation_config, read_json_file(gen.string()));
  } else {
    md->generation_config = nlohmann::json::object();
  }
  OPTIQ_ASSIGN_OR_RETURN(md->tensors, TensorStore::open_dir(dir));
  return md;
}

}  // namespace optiq
