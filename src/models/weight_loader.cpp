#include "models/weight_loader.h"

namespace optiq {

using json = nlohmann::json;

Result<const TensorView*> WeightLoader::find(const std::string& name) const {
  const TensorView* tv = dir_.tensors->find(name);
  if (!tv) return Status::NotFound(dir_.path + ": missing tensor " + name);
  return tv;
}

static bool is_float(DType t) { return t == DType::kF32 || t == DType::kBF16 || t == DType::kF16; }

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

Result<Weight> WeightLoader::linear(const std::string& module, int64_t n_out, int64_t n_in) const {
  const std::string wname = module + ".weight";
  const json& cfg = dir_.config;
  const json* qblock = nullptr;
  if (cfg.contains("quantization") && cfg["quantization"].is_object()) qblock = &cfg["quantization"];
  else if (cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) qblock = &cfg["quantization_config"];

  int bits = 0, gs = 0;
  const bool has_scales = has(module + ".scales");
  if (qblock) {
    auto it = qblock->find(module);
    if (it != qblock->end()) {
      if (it->is_boolean()) {
        if (it->get<bool>() && has_scales) {  // `true` means: use the global parameters
          bits = qblock->value("bits", 0);
          gs = qblock->value("group_size", 0);
        }
      } else if (it->is_object()) {
        bits = it->value("bits", qblock->value("bits", 0));
        gs = it->value("group_size", qblock->value("group_size", 0));
        if (it->contains("mode") && (*it)["mode"] != "affine")
          return Status::Unsupported(dir_.path + "/config.json: quantization." + module + ".mode " +
                                     (*it)["mode"].dump() + " (only affine)");
      } else {
        return Status::Corruption(dir_.path + "/config.json: quantization." + module + " is neither an object nor a bool");
      }
    } else if (has_scales) {
      bits = qblock->value("bits", 0);
      gs = qblock->value("group_size", 0);
      if (qblock->contains("mode") && (*qblock)["mode"] != "affine")
        return Status::Unsupported(dir_.path + "/config.json: quantization.mode " + (*qblock)["mode"].dump() +
                                   " (only affine)");
    }
  } else if (has_scales) {
    return Status::Corruption(dir_.tensors->file_of(module + ".scales") + ": " + module +
                              ".scales present but config.json has no quantization block");
  }
  if (bits == 0) return dense(wname, {n_out, n_in});

  const std::string where = dir_.tensors->file_of(wname) + ": " + module;
  if (bits != 2 && bits != 3 && bits != 4 && bits != 5 && bits != 6 && bits != 8)
    return Status::Corruption(where + ": quantization bits " + std::to_string(bits) + " not in {2,3,4,5,6,8}");
  if (gs != 32 && gs != 64 && gs != 128)
    return Status::Corruption(where + ": group_size " + std::to_string(gs) + " not in {32,64,128}");
  if (n_in % gs != 0)
    return Status::Corruption(where + ": input size " + std::to_string(n_in) + " is not a multiple of group_size " +
                              std::to_string(gs));
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* tw, find(wname));
  if (!has_scales) return Status::Corruption(where + ": quantized (bits " + std::to_string(bits) + ") but " + module + ".scales is missing");
  if (!has(module + ".biases")) return Status::Corruption(where + ": " + module + ".biases is missing");
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* ts, find(module + ".scales"));
  OPTIQ_ASSIGN_OR_RETURN(const TensorView* tb, find(module + ".biases"));
  if (tw->dtype != DType::kU32)
    return Status::Corruption(where + ".weight: dtype " + dtype_name(tw->dtype) + ", packed weights must be U32");
  const std::vector<int64_t> packed_shape{n_out, n_in * bits / 32};
  if (tw->shape != packed_shape)
    return Status::Corruption(where + ".weight: packed shape " + tw->shape_str() + ", expected " +
                              shape_to_string(packed_shape) + " for " + std::to_string(n_in) + " inputs at " +
                              std::to_string(bits) + " bits");
  const std::vector<int64_t> sshape{n_out, n_in / gs};
  if (ts->shape != sshape)
    return Status::Corruption(where + ".scales: shape " + ts->shape_str() + ", expected " + shape_to_string(sshape));
  if (tb->shape != sshape)
    return Status::Corruption(where + ".biases: shape " + tb->shape_str() + ", expected " + shape_to_string(sshape));
  if (!is_float(ts->dtype) || ts->dtype != tb->dtype)
    return Status::Corruption(where + ": scales/biases dtypes " + dtype_name(ts->dtype) + "/" + dtype_name(tb->dtype) +
                              " must be one float dtype");
  Weight w;
  w.dtype = DType::kU32;
  w.n_out = n_out;
  w.n_in = n_in;
  w.data = tw->data;
  w.quant.bits = bits;
  w.quant.group_size = gs;
  w.quant.scale_dtype = ts->dtype;
  w.quant.scales = ts->data;
  w.quant.biases = tb->data;
  return w;
}

}  // namespace optiq
