#include "quant/sensitivity.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "quant/mlx_affine.h"
#include "quant/progress.h"

namespace optiq {

using json = nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

// Module subtrees that stay float: multimodal towers ship as a bf16 sidecar (§7, §13).
const char* const kKeepFloatSubtrees[] = {"vision_tower", "vision_model", "audio_tower", "multi_modal_projector",
                                          "embed_vision", "embed_audio"};

uint64_t fnv1a(const std::vector<std::vector<int32_t>>& chunks) {
  uint64_t h = 1469598103934665603ull;
  for (const auto& c : chunks) {
    for (int32_t t : c) {
      h ^= static_cast<uint32_t>(t);
      h *= 1099511628211ull;
    }
    h ^= 0xFFFFFFFFull;
    h *= 1099511628211ull;
  }
  return h;
}

json to_json(const std::map<int, double>& m) {
  json j = json::object();
  for (auto& [b, v] : m) j[std::to_string(b)] = v;
  return j;
}

Result<std::map<int, double>> from_json(const json& j, const std::string& where) {
  std::map<int, double> m;
  if (!j.is_object()) return Status::Corruption(where + " is not an object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!it.value().is_number()) return Status::Corruption(where + "." + it.key() + " is not a number");
    try {
      m[std::stoi(it.key())] = it.value().get<double>();
    } catch (const std::exception&) {
      return Status::Corruption(where + ": key \"" + it.key() + "\" is not a bit width");
    }
  }
  return m;
}

Status write_checkpoint(const std::string& path, const std::string& fingerprint,
                        const std::vector<LayerSensitivity>& done) {
  json j;
  j["fingerprint"] = fingerprint;
  j["layers"] = json::array();
  for (const auto& l : done)
    j["layers"].push_back({{"name", l.name},
                           {"params", l.params},
                           {"kl", to_json(l.kl)},
                           {"kl_causal", to_json(l.kl_causal)},
                           {"kl_block", to_json(l.kl_block)}});
  return write_file_atomic(path, j.dump(1) + "\n");
}

// Layers already measured with the same settings; empty (with a note) if the file is stale.
Result<std::vector<LayerSensitivity>> read_checkpoint(const std::string& path, const std::string& fingerprint,
                                                      std::FILE* note) {
  std::vector<LayerSensitivity> out;
  std::error_code ec;
  if (path.empty() || !std::filesystem::exists(path, ec)) return out;
  OPTIQ_ASSIGN_OR_RETURN(json j, read_json_file(path));
  if (!j.is_object() || !j.contains("fingerprint") || j["fingerprint"] != fingerprint) {
    if (note) std::fprintf(note, "%s: made with other settings; measuring from scratch\n", path.c_str());
    return out;
  }
  if (!j.contains("layers") || !j["layers"].is_array()) return Status::Corruption(path + ": layers is not an array");
  for (size_t i = 0; i < j["layers"].size(); ++i) {
    const json& l = j["layers"][i];
    const std::string where = path + ": layers[" + std::to_string(i) + "]";
    if (!l.is_object() || !l.contains("name") || !l["name"].is_string() || !l.contains("params") ||
        !l["params"].is_number_integer() || !l.contains("kl"))
      return Status::Corruption(where + ": needs name, params and kl");
    LayerSensitivity s;
    s.name = l["name"].get<std::string>();
    s.params = l["params"].get<int64_t>();
    OPTIQ_ASSIGN_OR_RETURN(s.kl, from_json(l["kl"], where + ".kl"));
    if (l.contains("kl_causal")) {
      OPTIQ_ASSIGN_OR_RETURN(s.kl_causal, from_json(l["kl_causal"], where + ".kl_causal"));
    }
    if (l.contains("kl_block")) {
      OPTIQ_ASSIGN_OR_RETURN(s.kl_block, from_json(l["kl_block"], where + ".kl_block"));
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::vector<QuantCandidate> find_quantizable(const TensorStore& tensors, int group_size) {
  std::vector<QuantCandidate> out;
  for (const std::string& name : tensors.names()) {
    if (!ends_with(name, ".weight")) continue;
    const TensorView* tv = tensors.find(name);
    if (!tv || tv->shape.size() != 2) continue;
    if (tv->dtype != DType::kBF16 && tv->dtype != DType::kF16 && tv->dtype != DType::kF32) continue;
    const std::string module = name.substr(0, name.size() - 7);
    const size_t dot = module.rfind('.');
    const std::string last = dot == std::string::npos ? module : module.substr(dot + 1);
    if (last.find("norm") != std::string::npos) continue;
    bool tower = false;
    for (const char* t : kKeepFloatSubtrees) tower |= module.find(t) != std::string::npos;
    if (tower) continue;
    if (tv->shape[1] % group_size != 0) continue;  // e.g. dhara-tiny's down_proj (352 inputs)
    if (tensors.contains(module + ".scales")) continue;  // already quantized
    QuantCandidate c;
    c.module = module;
    c.n_out = tv->shape[0];
    c.n_in = tv->shape[1];
    c.dtype = tv->dtype;
    c.embedding = last.find("embed") != std::string::npos || last == "wte" || last == "wpe";
    out.push_back(std::move(c));
  }
  return out;
}

Result<TensorOverride> fake_quant_override(const TensorStore& tensors, const QuantCandidate& c, int bits,
                                           int group_size) {
  const TensorView* tv = tensors.find(c.module + ".weight");
  if (!tv) return Status::NotFound("fake quantization: missing tensor " + c.module + ".weight");
  std::vector<float> w(static_cast<size_t>(tv->numel()));
  convert_to_f32(tv->dtype, tv->data, w.data(), w.size());
  auto fq = affine_fake_quantize(w.data(), c.n_out, c.n_in, bits, group_size, tv->dtype);
  if (!fq.ok()) return fq.status().WithContext(c.module);
  auto bytes = std::make_shared<std::vector<uint8_t>>(fq->size() * 4);
  std::memcpy(bytes->data(), fq->data(), bytes->size());
  TensorOverride o;
  o.dtype = DType::kF32;
  o.shape = {c.n_out, c.n_in};
  o.bytes = std::move(bytes);
  return o;
}

std::string sensitivity_fingerprint(const std::string& model_dir, const std::vector<std::vector<int32_t>>& chunks,
                                    const SensitivityOptions& opts) {
  std::error_code ec;
  auto abs = std::filesystem::weakly_canonical(model_dir, ec);
  json j = {{"version", 1},
            {"model", ec ? model_dir : abs.string()},
            {"tokens_fnv1a", fnv1a(chunks)},
            {"n_chunks", chunks.size()},
            {"bits", opts.bits},
            {"group_size", opts.group_size},
            {"block", opts.probe.block},
            {"mask_fractions", opts.probe.mask_fractions},
            {"seed", opts.probe.seed}};
  return j.dump();
}

Result<std::vector<LayerSensitivity>> measure_sensitivity(const std::string& model_dir,
                                                          const std::vector<std::vector<int32_t>>& chunks,
                                                          const SensitivityOptions& opts, ThreadPool& pool) {
  for (int b : opts.bits)
    if (b != 16 && !mlx_bits_supported(b))
      return Status::InvalidArgument("candidate bits " + std::to_string(b) + " not in {2,3,4,5,6,8,16}");
  OPTIQ_ASSIGN_OR_RETURN(std::shared_ptr<ModelDir> md, ModelDir::open(model_dir));
  std::vector<QuantCandidate> probed;
  for (auto& c : find_quantizable(*md->tensors, opts.group_size))
    if (!c.embedding) probed.push_back(c);
  const std::string fp = sensitivity_fingerprint(model_dir, chunks, opts);
  OPTIQ_ASSIGN_OR_RETURN(std::vector<LayerSensitivity> done, read_checkpoint(opts.checkpoint_path, fp, opts.progress));
  std::map<std::string, LayerSensitivity> by_name;
  for (auto& l : done) by_name[l.name] = l;

  int n_measured_bits = 0;
  for (int b : opts.bits) n_measured_bits += b != 16;
  const int64_t total = 1 + static_cast<int64_t>(probed.size()) * n_measured_bits;
  int64_t units = 0;
  for (auto& c : probed) units += by_name.count(c.module) ? n_measured_bits : 0;
  ProgressBar bar(total, "sensitivity", opts.progress);
  bar.set_resumed(units);
  bar.update(units, "reference logits");

  OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<Model> ref_model, load_model(model_dir));
  OPTIQ_ASSIGN_OR_RETURN(ReferenceLogits ref, ReferenceLogits::compute(*ref_model, chunks, opts.probe, pool));
  ref_model.reset();
  bar.update(++units, "reference logits");

  std::vector<LayerSensitivity> out;
  for (const auto& c : probed) {
    if (auto it = by_name.find(c.module); it != by_name.end()) {
      out.push_back(it->second);
      continue;
    }
    LayerSensitivity s;
    s.name = c.module;
    s.params = c.params();
    for (int b : opts.bits) {
      if (b == 16) {  // the lossless tier
        s.kl[b] = s.kl_causal[b] = 0;
        if (ref.has_block()) s.kl_block[b] = 0;
        continue;
      }
      bar.update(units, c.module + " @" + std::to_string(b) + "b");
      LoadOptions lo;
      lo.repack = false;  // block forwards only
      OPTIQ_ASSIGN_OR_RETURN(lo.tensor_overrides[c.module + ".weight"],
                             fake_quant_override(*md->tensors, c, b, opts.group_size));
      OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<Model> m, load_model(model_dir, lo));
      OPTIQ_ASSIGN_OR_RETURN(KlValues kv, ref.compare(*m, pool));
      double score = kv.score();
      if (std::isnan(score)) score = 1e9;  // maximally sensitive (§8)
      s.kl[b] = score;
      s.kl_causal[b] = KlValues::mean(kv.causal);
      if (!kv.block.empty()) s.kl_block[b] = KlValues::mean(kv.block);
      bar.update(++units, c.module + " @" + std::to_string(b) + "b");
    }
    out.push_back(s);
    if (!opts.checkpoint_path.empty()) OPTIQ_RETURN_IF_ERROR(write_checkpoint(opts.checkpoint_path, fp, out));
  }
  bar.update(total, "done");
  return out;
}

}  // namespace optiq
