// Post-processors: add the special tokens around an encoded sequence; each mirrors the Rust `tokenizers`
// post-processor of the same name.
#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {

using nlohmann::json;

namespace {

class PostSequence : public PostProcessor {
 public:
  std::vector<std::unique_ptr<PostProcessor>> items;
  void process(std::vector<int32_t>& ids, bool add) const override {
    for (auto& p : items) p->process(ids, add);
  }
};

class PostNoop : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class PostTemplate : public PostProcessor {
 public:
  // Each item: the sequence (empty optional) or the ids of a special token.
  std::vector<std::optional<std::vector<int32_t>>> single;
  void process(std::vector<int32_t>& ids, bool add) const override {
    if (!add) return;
    std::vector<int32_t> out;
    out.reserve(ids.size() + 4);
    for (auto& item : single) {
      if (item) out.insert(out.end(), item->begin(), item->end());
      else out.insert(out.end(), ids.begin(), ids.end());
    }
    ids = std::move(out);
  }
};

}  // namespace

Result<std::unique_ptr<PostProcessor>> make_post_processor(const json& j, const std::string& where, const Pipeline& pl) {
  if (!j.is_object()) return Status::InvalidArgument(where + ": expected an object");
  OPTIQ_ASSIGN_OR_RETURN(std::string type, get_str(j, "type", where));
  if (type == "Sequence") {
    auto seq = std::make_unique<PostSequence>();
    auto it = j.find("processors");
    if (it == j.end() || !it->is_array()) return Status::InvalidArgument(field(where, "processors") + ": expected an array");
    for (size_t k = 0; k < it->size(); ++k) {
      OPTIQ_ASSIGN_OR_RETURN(auto p, make_post_processor((*it)[k], field(where, "processors") + "[" + std::to_string(k) + "]", pl));
      seq->items.push_back(std::move(p));
    }
    return std::unique_ptr<PostProcessor>(std::move(seq));
  }
  if (type == "ByteLevel") return std::unique_ptr<PostProcessor>(new PostNoop());  // only trims offsets
  if (type == "TemplateProcessing") {
    auto p = std::make_unique<PostTemplate>();
    std::string w = field(where, "single");
    auto special_ids = [&](const std::string& name) -> Result<std::vector<int32_t>> {
      auto st = j.find("special_tokens");
      if (st != j.end() && st->is_object() && st->contains(name)) {
        const json& e = (*st)[name];
        if (!e.is_object() || !e.contains("ids") || !e["ids"].is_array())
          return Status::InvalidArgument(field(where, "special_tokens") + "." + name + ".ids: expected an array");
        std::vector<int32_t> ids;
        for (auto& v : e["ids"]) {
          if (!v.is_number_integer()) return Status::InvalidArgument(field(where, "special_tokens") + "." + name + ".ids: expected integers");
          ids.push_back(v.get<int32_t>());
        }
        return ids;
      }
      auto id = pl.token_to_id(name);
      if (!id) return Status::InvalidArgument(w + ": special token '" + name + "' is not defined");
      return std::vector<int32_t>{*id};
    };
    auto it = j.find("single");
    if (it == j.end()) return Status::InvalidArgument(w + ": missing");
    if (it->is_string()) {
      std::string s = it->get<std::string>();
      size_t pos = 0;
      while (pos < s.size()) {
        size_t e = s.find(' ', pos);
        if (e == std::string::npos) e = s.size();
        std::string piece = s.substr(pos, e - pos);
        pos = e + 1;
        if (piece.empty()) continue;
        std::string name = piece.substr(0, piece.find(':'));
        if (name == "$A" || name == "$" || name == "$0") { p->single.push_back(std::nullopt); continue; }
        if (!name.empty() && name[0] == '$') continue;  // pair sequences do not occur in single
        OPTIQ_ASSIGN_OR_RETURN(auto ids, special_ids(name));
        p->single.push_back(std::move(ids));
      }
    } else if (it->is_array()) {
      for (auto& item : *it) {
        if (item.is_object() && item.contains("Sequence")) { p->single.push_back(std::nullopt); continue; }
        if (item.is_object() && item.contains("SpecialToken") && item["SpecialToken"].is_object() &&
            item["SpecialToken"].contains("id") && item["SpecialToken"]["id"].is_string()) {
          OPTIQ_ASSIGN_OR_RETURN(auto ids, special_ids(item["SpecialToken"]["id"].get<std::string>()));
          p->single.push_back(std::move(ids));
          continue;
        }
        return Status::InvalidArgument(w + ": unexpected item " + item.dump().substr(0, 80));
      }
    } else {
      return Status::InvalidArgument(w + ": expected an array or a string");
    }
    return std::unique_ptr<PostProcessor>(std::move(p));
  }
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    auto p = std::make_unique<PostTemplate>();
    for (const char* k : {"cls", "sep"}) {
      auto it = j.find(k);
      if (it == j.end() || !it->is_array() || it->size() != 2 || !(*it)[1].is_number_integer())
        return Status::InvalidArgument(field(where, k) + ": expected [token, id]");
      if (std::string(k) == "sep") p->single.push_back(std::nullopt);
      p->single.push_back(std::vector<int32_t>{(*it)[1].get<int32_t>()});
    }
    return std::unique_ptr<PostProcessor>(std::move(p));
  }
  return Status::Unsupported(field(where, "type") + ": post-processor '" + type + "' is not supported");
}

}  // namespace optiq::tok
