#include "io/model_dir.h"

#include <algorithm>
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
  return parse_json(ss.str(), path);
}

Result<nlohmann::json> parse_json(std::string_view text, const std::string& name) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    return Status::Corruption(name + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {  // out_of_range.406: a number beyond double (1e400)
    return Status::Corruption(name + ": invalid JSON: " + e.what());
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

Status read_positive_int(const nlohmann::json& j, const char* key, const std::string& prefix, int64_t* out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() || it->get<int64_t>() <= 0)
    return Status::Corruption(prefix + key + " must be a positive integer");
  *out = it->get<int64_t>();
  return Status::Ok();
}

std::vector<int32_t> ModelDir::eos_ids() const {
  std::vector<int32_t> ids;
  for (const nlohmann::json* j : {&config, &generation_config}) {
    auto it = j->find("eos_token_id");
    if (it == j->end()) continue;
    if (it->is_number_integer()) ids.push_back(it->get<int32_t>());
    if (it->is_array())
      for (auto& e : *it)
        if (e.is_number_integer()) ids.push_back(e.get<int32_t>());
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace optiq
