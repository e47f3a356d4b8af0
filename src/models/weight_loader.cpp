#include "models/weight_loader.h"

#include <new>

#include "kernels/kernels.h"

namespace optiq {

using json = nlohmann::json;

Result<const TensorView*> WeightLoader::find(const std::string& name) const {
  const TensorView* tv = dir_.tensors->find(name);
  if (!tv) return Status::NotFound(dir_.path + ": missing tensor " + name);
  return tv;
}

static bool is_float(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }
static bool mlx_bits_ok(int b) { return b == 2 || b == 3 || b == 4 || b == 5 || b == 6 || b == 8; }

Result<Weight> WeightLoader::dense(const std::string& name, const std::vector<int64_t>& shape) const {
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* tv, find(name));
  const std::string where = dir_.tensors->file_of(name) + ": " + name;
  if (!is_float(tv->dtype))
    return Status::Corruption(where + ": dtype " + dtype_name(tv->dtype) + ", expected F32, BF16 or F16");
  if (tv->shape != shape)
    return Status::Corruption(where + ": shape " + tv->shape_str() + ", config implies " + shape_to_string(shape));
  Weight w;
  w.dtype = tv->dtype;
  w.n_out = shape.empty() ? 1 : shape[0];
  w.n_in = shape.size() >= 2 ? tv->numel() / shape[0] : (shape.empty() ? 1 : shape[0]);
  if (shape.size() == 1) w.n_out = 1;
  w.data = tv->data;
  if (tv->dtype == DType::kF16) {
    // Kernels stream f32 or bf16; f16 checkpoints are converted once at load.
    auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(tv->numel()) * 4);
    convert_to_f32(DType::kF16, tv->data, reinterpret_cast<float*>(buf->data()), static_cast<size_t>(tv->numel()));
    w.owned = buf;
    w.data = buf->data();
    w.dtype = DType::kF32;
  }
  return w;
}

Result<std::vector<float>> WeightLoader::f32(const std::string& name, const std::vector<int64_t>& shape) const {
  OPTIQ_ASSIGN_OR_RETURN(Weight w, dense(name, shape));
  std::vector<float> out(static_cast<size_t>(w.n_out * w.n_in));
  convert_to_f32(w.dtype, w.data, out.data(), out.size());
  return out;
}

namespace {

// An optional integer field of a config object; Corruption if present but not an integer.
Result<int> int_field(const json& obj, const char* key, int fallback, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_number_integer())
    return Status::Corruption(where + "." + key + " must be an integer, got " + it->dump());
  return it->get<int>();
}

Status check_mode(const json& obj, const std::string& where) {
  auto it = obj.find("mode");
  if (it == obj.end()) return Status::Ok();
  if (!it->is_string() || it->get<std::string>() != "affine")
    return Status::Unsupported(where + ".mode " + it->dump() + " (only affine is supported)");
  return Status::Ok();
}

}  // namespace

Result<WeightLoader::QuantParams> WeightLoader::quant_params(const std::string& module) const {
  QuantParams p;
  // A caller-supplied float replacement (LoadOptions::tensor_overrides) makes the module dense.
  if (dir_.tensors->is_override(module + ".weight")) return p;
  const json& cfg = dir_.config;
  const std::string cfg_file = dir_.path + "/config.json";
  const json* qblock = nullptr;
  std::string qname;
  if (cfg.contains("quantization") && cfg["quantization"].is_object()) {
    qblock = &cfg["quantization"];
    qname = "quantization";
  } else if (cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) {
    qblock = &cfg["quantization_config"];
    qname = "quantization_config";
  }
  const bool has_scales = has(module + ".scales");
  if (!qblock) {
    if (has_scales)
      return Status::Corruption(dir_.tensors->file_of(module + ".scales") + ": " + module +
                                ".scales present but config.json has no quantization block");
    return p;
  }
  const std::string where = cfg_file + ": " + qname;
  if (qblock->contains("quant_method"))
    return Status::Unsupported(where + ".quant_method " + (*qblock)["quant_method"].dump() +
                               ": only MLX affine checkpoints (no quant_method) are supported");
  // specs/mlx-format.md §4 load rule: an entry for the path decides; otherwise the global
  // parameters apply iff `<path>.scales` exists; otherwise the module stays float.
  auto global = [&]() -> Result<QuantParams> {
    QuantParams g;
    OPTIQ_RETURN_IF_ERROR(check_mode(*qblock, where));
    OPTIQ_ASSIGN_OR_RETURN(g.bits, int_field(*qblock, "bits", 4, where));
    OPTIQ_ASSIGN_OR_RETURN(g.group_size, int_field(*qblock, "group_size", 64, where));
    return g;
  };
  auto it = qblock->find(module);
  if (it != qblock->end()) {
    const std::string ewhere = where + "." + module;
    if (it->is_boolean()) return it->get<bool>() ? global() : p;  // false: keep float
    if (!it->is_object()) return Status::Corruption(ewhere + " is neither an object nor a bool: " + it->dump());
    OPTIQ_RETURN_IF_ERROR(check_mode(*it, ewhere));
    // Missing fields take MLX's to_quantized defaults, which are the global ones in every
    // checkpoint mlx-lm writes.
    OPTIQ_ASSIGN_OR_RETURN(QuantParams g, global());
    OPTIQ_ASSIGN_OR_RETURN(p.bits, int_field(*it, "bits", g.bits, ewhere));
    OPTIQ_ASSIGN_OR_RETURN(p.group_size, int_field(*it, "group_size", g.group_size, ewhere));
    return p;
  }
  if (has_scales) return global();
  return p;
}

Result<Weight> WeightLoader::load_module(const std::string& module, int64_t n_stack, int64_t n_out,
                                         int64_t n_in) const {
  const std::string wname = module + ".weight";
  auto shape_of = [&](int64_t last) {
    std::vector<int64_t> s;
    if (n_stack > 0) s.push_back(n_stack);
    s.push_back(n_out);
    s.push_back(last);
    return s;
  };
  const int64_t rows = (n_stack > 0 ? n_stack : 1) * n_out;
  OPTIQ_ASSIGN_OR_RETURN(QuantParams qp, quant_params(module));
  if (qp.bits == 0) {
    OPTIQ_ASSIGN_OR_RETURN(const TensorView* tv, find(wname));
    if (tv->dtype == DType::kU32 && !has(module + ".scales"))
      return Status::Corruption(dir_.tensors->file_of(wname) + ": " + wname +
                                ": packed U32 weight but config.json does not quantize " + module +
                                " and there is no " + module + ".scales");
    OPTIQ_ASSIGN_OR_RETURN(Weight w, dense(wname, shape_of(n_in)));
    w.n_out = rows;
    w.n_in = n_in;
    return w;
  }
  const int bits = qp.bits, gs = qp.group_size;
  const std::string where = dir_.tensors->file_of(wname) + ": " + module;
  if (!mlx_bits_ok(bits))
    return Status::Corruption(where + ": quantization bits " + std::to_string(bits) + " not in {2,3,4,5,6,8}");
  if (gs != 32 && gs != 64 && gs != 128)
    return Status::Corruption(where + ": group_size " + std::to_string(gs) + " not in {32,64,128}");
  if (n_in % gs != 0)
    return Status::Corruption(where + ": input size " + std::to_string(n_in) + " is not a multiple of group_size " +
                              std::to_string(gs));
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* tw, find(wname));
  if (!has(module + ".scales"))
    return Status::Corruption(where + ": quantized (bits " + std::to_string(bits) + ") but " + module +
                              ".scales is missing");
  if (!has(module + ".biases"))
    return Status::Corruption(where + ": quantized (bits " + std::to_string(bits) + ") but " + module +
                              ".biases is missing (affine mode needs biases)");
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* ts, find(module + ".scales"));
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* tb, find(module + ".biases"));
  if (tw->dtype != DType::kU32)
    return Status::Corruption(where + ".weight: dtype " + dtype_name(tw->dtype) + ", packed weights must be U32");
  const std::vector<int64_t> packed_shape = shape_of(n_in * bits / 32);
  if (tw->shape != packed_shape) {
    std::string implied;
    if (!tw->shape.empty())
      implied = " (its last dimension implies " + std::to_string(tw->shape.back() * 32 / bits) + " inputs)";
    return Status::Corruption(where + ".weight: packed shape " + tw->shape_str() + ", expected " +
                              shape_to_string(packed_shape) + " for " + std::to_string(n_in) + " inputs at " +
                              std::to_string(bits) + " bits" + implied);
  }
  const std::vector<int64_t> sshape = shape_of(n_in / gs);
  if (ts->shape != sshape)
    return Status::Corruption(where + ".scales: shape " + ts->shape_str() + ", expected " + shape_to_string(sshape) +
                              " (group_size " + std::to_string(gs) + ")");
  if (tb->shape != sshape)
    return Status::Corruption(where + ".biases: shape " + tb->shape_str() + ", expected " + shape_to_string(sshape) +
                              " (group_size " + std::to_string(gs) + ")");
  if (!is_float(ts->dtype) || ts->dtype != tb->dtype)
    return Status::Corruption(where + ": scales/biases dtypes " + dtype_name(ts->dtype) + "/" + dtype_name(tb->dtype) +
                              " must be one float dtype");
  Weight w;
  w.dtype = DType::kU32;
  w.n_out = rows;
  w.n_in = n_in;
  w.data = tw->data;
  w.quant.bits = bits;
  w.quant.group_size = gs;
  w.quant.scale_dtype = ts->dtype;
  w.quant.scales = ts->data;
  w.quant.biases = tb->data;
  if (ts->dtype == DType::kF16) {
    // Kernels read bf16 or f32 scales; convert f16 ones once, as dense() does for f16 weights.
    auto buf = std::make_shared<std::vector<uint8_t>>(static_cast<size_t>(ts->numel()) * 8);
    float* f = reinterpret_cast<float*>(buf->data());
    convert_to_f32(DType::kF16, ts->data, f, static_cast<size_t>(ts->numel()));
    convert_to_f32(DType::kF16, tb->data, f + ts->numel(), static_cast<size_t>(tb->numel()));
    w.owned = buf;
    w.quant.scale_dtype = DType::kF32;
    w.quant.scales = f;
    w.quant.biases = f + ts->numel();
  }
  if (dir_.repack && n_stack == 0) {
    if (!arena_) arena_ = std::make_unique<HugePageArena>();
    try {
      // Decode reads the copy; block forwards fault the codes back in from the page cache if run.
      if (add_decode_layout(w, *arena_))
        dir_.tensors->release_pages(w.data, static_cast<size_t>(rows * n_in * bits / 8));
    } catch (const std::bad_alloc&) {
      // The copy is an optimisation: without memory for it the matrix decodes from the file layout.
      w.packed = nullptr;
    }
  }
  return w;
}

Result<Weight> WeightLoader::linear(const std::string& module, int64_t n_out, int64_t n_in) const {
  return load_module(module, 0, n_out, n_in);
}

Result<std::vector<Weight>> WeightLoader::experts(const std::string& module, int64_t n_experts, int64_t n_out,
                                                  int64_t n_in) const {
  if (n_experts <= 0) return Status::InvalidArgument(module + ": expert count must be positive");
  OPTIQ_ASSIGN_OR_RETURN(Weight all, load_module(module, n_experts, n_out, n_in));
  std::vector<Weight> out(static_cast<size_t>(n_experts), all);
  for (int64_t e = 0; e < n_experts; ++e) {
    Weight& w = out[e];
    w.n_out = n_out;
    if (!all.quantized()) {
      w.data = static_cast<const uint8_t*>(all.data) + e * n_out * n_in * dtype_size(all.dtype);
    } else {
      const int64_t n_groups = n_in / all.quant.group_size;
      const size_t ss = dtype_size(all.quant.scale_dtype);
      w.data = static_cast<const uint8_t*>(all.data) + e * n_out * n_in * all.quant.bits / 8;
      w.quant.scales = static_cast<const uint8_t*>(all.quant.scales) + e * n_out * n_groups * ss;
      w.quant.biases = static_cast<const uint8_t*>(all.quant.biases) + e * n_out * n_groups * ss;
    }
  }
  return out;
}

}  // namespace optiq
