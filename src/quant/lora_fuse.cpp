#include "quant/lora_fuse.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "io/safetensors.h"
#include "models/model.h"
#include "quant/mlx_affine.h"

namespace optiq {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A tensor computed here, written in place of the checkpoint's.
struct OwnedTensor {
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};
using FusedModule = std::map<std::string, OwnedTensor>;  // tensor name → replacement

// w [out, in] (fp32 values) + scale · (a b)ᵀ, in double per row, rounded to fp32.
std::vector<float> add_delta(const float* w, const LoraModule& m, float scale) {
  const int64_t in = m.in, out = m.out, r = m.rank;
  std::vector<double> a_t(static_cast<size_t>(r * in));  // aᵀ [r, in]: rows of the sum are contiguous
  for (int64_t i = 0; i < in; ++i)
    for (int64_t j = 0; j < r; ++j) a_t[j * in + i] = m.a[i * r + j];
  std::vector<float> fused(static_cast<size_t>(out * in));
  std::vector<double> row(static_cast<size_t>(in));
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) row[i] = w[o * in + i];
    for (int64_t j = 0; j < r; ++j) {
      const double c = static_cast<double>(scale) * m.b[j * out + o];
      const double* aj = a_t.data() + j * in;
      for (int64_t i = 0; i < in; ++i) row[i] += c * aj[i];
    }
    for (int64_t i = 0; i < in; ++i) fused[o * in + i] = static_cast<float>(row[i]);
  }
  return fused;
}

// Module `name` of the checkpoint with `m` fused: its .weight (dense), or .weight/.scales/.biases
// (MLX affine, re-quantized with the same bits, group size and scale dtype).
Result<FusedModule> fuse_module(const TensorStore& ts, const std::string& name, const LoraModule& m, float scale,
                                FuseStats& stats) {
  const std::string wname = name + ".weight";
  const TensorView* w = ts.find(wname);
  if (!w) return Status::NotFound(name + ": no tensor " + wname);
  const std::string where = ts.file_of(wname) + ": " + wname;
  FusedModule out;
  if (w->dtype == DType::kBF16 || w->dtype == DType::kF16 || w->dtype == DType::kF32) {
    if (w->shape != std::vector<int64_t>{m.out, m.in})
      return Status::Corruption(where + ": shape " + w->shape_str() + ", the adapter implies [" +
                                std::to_string(m.out) + ", " + std::to_string(m.in) + "]");
    std::vector<float> values(static_cast<size_t>(w->numel()));
    convert_to_f32(w->dtype, w->data, values.data(), values.size());
    const std::vector<float> fused = add_delta(values.data(), m, scale);
    out[wname] = {w->dtype, w->shape, encode_floats(fused.data(), fused.size(), w->dtype)};
    ++stats.dense_modules;
    return out;
  }
  if (w->dtype != DType::kU32) return Status::Unsupported(where + ": dtype " + dtype_name(w->dtype));
  const TensorView* sc = ts.find(name + ".scales");
  const TensorView* bi = ts.find(name + ".biases");
  if (!sc || !bi) return Status::Corruption(where + ": packed U32 weight without " + name + ".scales / .biases");
  // bits and group size from the shapes: [out, in·bits/32] codes, [out, in/group] scales (the loader
  // checked them against config.json's quantization entry).
  if (w->shape.size() != 2 || sc->shape.size() != 2 || w->shape[0] != m.out || sc->shape[0] != m.out ||
      sc->shape != bi->shape || sc->dtype != bi->dtype || sc->shape[1] <= 0 || (w->shape[1] * 32) % m.in != 0 ||
      m.in % sc->shape[1] != 0)
    return Status::Corruption(where + ": shapes " + w->shape_str() + " / scales " + sc->shape_str() +
                              " do not fit a quantized [" + std::to_string(m.out) + ", " + std::to_string(m.in) +
                              "] linear");
  AffineQuantized q;
  q.bits = static_cast<int>(w->shape[1] * 32 / m.in);
  q.group_size = static_cast<int>(m.in / sc->shape[1]);
  if (!mlx_bits_supported(q.bits) || !mlx_group_size_supported(q.group_size))
    return Status::Unsupported(where + ": " + std::to_string(q.bits) + " bits, group size " +
                               std::to_string(q.group_size));
  q.rows = m.out;
  q.cols = m.in;
  q.scale_dtype = sc->dtype;
  q.packed.resize(static_cast<size_t>(w->numel()));
  std::memcpy(q.packed.data(), w->data, w->nbytes);
  q.scales.assign(static_cast<const uint8_t*>(sc->data), static_cast<const uint8_t*>(sc->data) + sc->nbytes);
  q.biases.assign(static_cast<const uint8_t*>(bi->data), static_cast<const uint8_t*>(bi->data) + bi->nbytes);
  std::vector<float> values(static_cast<size_t>(m.out * m.in));
  affine_dequantize(q, values.data());
  const std::vector<float> fused = add_delta(values.data(), m, scale);
  auto rq = affine_quantize(fused.data(), m.out, m.in, q.bits, q.group_size, q.scale_dtype);
  if (!rq.ok()) return rq.status().WithContext(where);
  const AffineQuantized& n = *rq;
  std::vector<uint8_t> packed(n.packed.size() * 4);
  std::memcpy(packed.data(), n.packed.data(), packed.size());
  out[wname] = {DType::kU32, w->shape, std::move(packed)};
  out[name + ".scales"] = {n.scale_dtype, sc->shape, n.scales};
  out[name + ".biases"] = {n.scale_dtype, bi->shape, n.biases};
  ++stats.requantized_modules;
  return out;
}

// The adapted module a tensor belongs to ("" if none): `M.weight`, `M.scales` or `M.biases`.
std::string adapted_module(const std::string& tensor, const LoraAdapter& adapter) {
  for (const char* suffix : {".weight", ".scales", ".biases"}) {
    if (!ends_with(tensor, suffix)) continue;
    std::string m = tensor.substr(0, tensor.size() - std::string(suffix).size());
    return adapter.find(m) ? m : std::string();
  }
  return {};
}

// Rewrites one safetensors file with the adapted modules' tensors replaced; copies it when it holds
// none. A module split across shards is fused once per shard that holds a part of it (the results
// are identical: the arithmetic is deterministic).
Status fuse_file(const fs::path& from, const fs::path& to, const TensorStore& ts, const LoraAdapter& adapter,
                 FuseStats& stats) {
  OPTIQ_ASSIGN_OR_RETURN(auto file, SafetensorsFile::open(from.string()));
  std::map<std::string, FusedModule> fused;
  for (const auto& [name, view] : file->tensors()) {
    const std::string m = adapted_module(name, adapter);
    if (m.empty() || fused.count(m)) continue;
    OPTIQ_ASSIGN_OR_RETURN(fused[m], fuse_module(ts, m, *adapter.find(m), adapter.scale, stats));
  }
  std::error_code ec;
  if (fused.empty()) {
    fs::copy_file(from, to, ec);
    if (ec) return Status::IOError(from.string() + " → " + to.string() + ": " + ec.message());
    ++stats.files_copied;
    return Status::Ok();
  }
  std::vector<TensorToWrite> tensors;
  for (const auto& [name, view] : file->tensors()) {
    const std::string m = adapted_module(name, adapter);
    const OwnedTensor* r = nullptr;
    if (!m.empty()) {
      auto it = fused[m].find(name);
      if (it != fused[m].end()) r = &it->second;
    }
    if (r)
      tensors.push_back({name, r->dtype, r->shape, r->bytes.data(), r->bytes.size()});
    else
      tensors.push_back({name, view.dtype, view.shape, view.data, view.nbytes});
  }
  OPTIQ_RETURN_IF_ERROR(write_safetensors(to.string(), tensors, file->metadata()));
  ++stats.files_rewritten;
  return Status::Ok();
}

// Copies `from` (a model directory) into `to` with every safetensors file fused.
Status write_fused_dir(const fs::path& from, const fs::path& to, const TensorStore& ts, const LoraAdapter& adapter,
                       FuseStats& stats) {
  std::error_code ec;
  std::vector<fs::directory_entry> entries;
  for (const auto& e : fs::directory_iterator(from, ec)) entries.push_back(e);
  if (ec) return Status::IOError(from.string() + ": " + ec.message());
  for (const auto& e : entries) {
    const fs::path dst = to / e.path().filename();
    if (e.is_directory(ec)) {
      fs::copy(e.path(), dst, fs::copy_options::recursive, ec);
    } else if (e.path().extension() == ".safetensors") {
      OPTIQ_RETURN_IF_ERROR(fuse_file(e.path(), dst, ts, adapter, stats));
      continue;
    } else {
      fs::copy_file(e.path(), dst, ec);
      if (!ec) ++stats.files_copied;
    }
    if (ec) return Status::IOError(e.path().string() + " → " + dst.string() + ": " + ec.message());
  }
  return Status::Ok();
}

}  // namespace

Result<FuseStats> fuse_lora(const std::string& model_dir, const LoraAdapter& adapter, const std::string& out_dir) {
  LoadOptions lo;
  lo.repack = false;  // only the checks of a load are needed
  OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<Model> model, load_model(model_dir, lo));
  OPTIQ_RETURN_IF_ERROR(validate_adapter(*model, adapter).WithContext(model_dir));
  model.reset();
  OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<TensorStore> ts, TensorStore::open_dir(model_dir));

  std::error_code ec;
  fs::path out = fs::path(out_dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "dir/" → "dir"
  if (out.empty()) return Status::InvalidArgument("-o: empty output directory");
  if (fs::exists(out, ec)) {
    if (fs::equivalent(out, model_dir, ec)) return Status::InvalidArgument(out.string() + ": is the model directory");
    if (!fs::is_directory(out, ec) || !fs::is_empty(out, ec))
      return Status::InvalidArgument(out.string() + ": already exists (give a new or empty directory)");
  }
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  if (ec) return Status::IOError(parent.string() + ": " + ec.message());
  const fs::path tmp = parent / ("." + out.filename().string() + ".fuse-tmp-" + std::to_string(::getpid()));
  fs::remove_all(tmp, ec);
  fs::create_directory(tmp, ec);
  if (ec) return Status::IOError(tmp.string() + ": " + ec.message());

  FuseStats stats;
  Status st = write_fused_dir(model_dir, tmp, *ts, adapter, stats);
  if (st.ok()) {
    fs::rename(tmp, out, ec);
    if (ec) st = Status::IOError(tmp.string() + " → " + out.string() + ": " + ec.message());
  }
  if (!st.ok()) {
    fs::remove_all(tmp, ec);
    return st;
  }
  return stats;
}

}  // namespace optiq
