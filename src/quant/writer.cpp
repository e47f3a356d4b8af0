#include "quant/writer.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "io/model_dir.h"
#include "quant/mlx_affine.h"

namespace optiq {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Files that travel with the weights unchanged.
const char* const kCopiedFiles[] = {"tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json",
                                    "generation_config.json", "tokenizer.model",       "vocab.json",
                                    "merges.txt",            "added_tokens.json",     "chat_template.jinja",
                                    "chat_template.json",    "preprocessor_config.json", "processor_config.json"};

Status copy_verbatim(const fs::path& from, const fs::path& to) {
  std::ifstream in(from, std::ios::binary);
  if (!in) return Status::IOError(from.string() + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return write_file_atomic(to.string(), ss.str());
}

}  // namespace

Status write_quantized_model(const std::string& src_dir, const std::string& out_dir, const QuantizedModelSpec& spec) {
  OPTIQ_ASSIGN_OR_RETURN(std::shared_ptr<ModelDir> src, ModelDir::open(src_dir));
  if (src->config.contains("quantization") || src->config.contains("quantization_config"))
    return Status::InvalidArgument(src_dir + "/config.json: already quantized; convert needs a float checkpoint");
  if (!mlx_bits_supported(spec.global_bits) || !mlx_group_size_supported(spec.global_group_size))
    return Status::InvalidArgument("global quantization bits " + std::to_string(spec.global_bits) + " / group_size " +
                                   std::to_string(spec.global_group_size) + " unsupported");
  for (const auto& [mod, q] : spec.modules) {
    const TensorView* tv = src->tensors->find(mod + ".weight");
    if (!tv) return Status::InvalidArgument(src_dir + ": planned module " + mod + " has no " + mod + ".weight");
    if (tv->shape.size() != 2 || (tv->dtype != DType::kBF16 && tv->dtype != DType::kF16 && tv->dtype != DType::kF32))
      return Status::InvalidArgument(src_dir + ": " + mod + ".weight is " + dtype_name(tv->dtype) + " " +
                                     tv->shape_str() + ", not a 2-D float weight");
    if (!spec.per_module_entries && (q.bits != spec.global_bits || q.group_size != spec.global_group_size))
      return Status::InvalidArgument(mod + ": bits/group_size differ from the global block but per-module entries "
                                           "are disabled");
  }
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec) return Status::IOError(out_dir + ": " + ec.message());

  std::vector<AffineQuantized> quantized;  // storage for the packed tensors until written
  quantized.reserve(spec.modules.size());
  std::vector<TensorToWrite> out;
  std::vector<float> buf;
  for (const std::string& name : src->tensors->names()) {
    const TensorView* tv = src->tensors->find(name);
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    const std::string mod = is_weight ? name.substr(0, name.size() - 7) : std::string();
    auto it = is_weight ? spec.modules.find(mod) : spec.modules.end();
    if (it == spec.modules.end()) {
      out.push_back({name, tv->dtype, tv->shape, tv->data, tv->nbytes});
      continue;
    }
    buf.resize(static_cast<size_t>(tv->numel()));
    convert_to_f32(tv->dtype, tv->data, buf.data(), buf.size());
    auto q = affine_quantize(buf.data(), tv->shape[0], tv->shape[1], it->second.bits, it->second.group_size,
                             tv->dtype);
    if (!q.ok()) return q.status().WithContext(src->tensors->file_of(name) + ": " + mod);
    quantized.push_back(std::move(q.value()));
    const AffineQuantized& a = quantized.back();
    out.push_back({mod + ".weight", DType::kU32, {a.rows, a.packed_cols()}, a.packed.data(), a.packed.size() * 4});
    out.push_back({mod + ".scales", a.scale_dtype, {a.rows, a.n_groups()}, a.scales.data(), a.scales.size()});
    out.push_back({mod + ".biases", a.scale_dtype, {a.rows, a.n_groups()}, a.biases.data(), a.biases.size()});
  }
  OPTIQ_RETURN_IF_ERROR(write_safetensors((fs::path(out_dir) / "model.safetensors").string(), out, {{"format", "mlx"}}));

  json cfg = src->config;
  cfg.erase("_name_or_path");
  json qb = {{"group_size", spec.global_group_size}, {"bits", spec.global_bits}, {"mode", "affine"}};
  if (spec.per_module_entries)
    for (const auto& [mod, q] : spec.modules) qb[mod] = {{"bits", q.bits}, {"group_size", q.group_size}};
  cfg["quantization"] = qb;
  cfg["quantization_config"] = qb;
  OPTIQ_RETURN_IF_ERROR(write_file_atomic((fs::path(out_dir) / "config.json").string(), cfg.dump(4) + "\n"));
  if (!spec.metadata.is_null())
    OPTIQ_RETURN_IF_ERROR(
        write_file_atomic((fs::path(out_dir) / "optiq_metadata.json").string(), spec.metadata.dump(2) + "\n"));
  for (const char* f : kCopiedFiles) {
    const fs::path from = fs::path(src_dir) / f;
    if (fs::exists(from, ec)) OPTIQ_RETURN_IF_ERROR(copy_verbatim(from, fs::path(out_dir) / f));
  }
  return Status::Ok();
}

}  // namespace optiq
