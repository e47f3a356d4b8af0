#include "quant/convert.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/model_dir.h"
#include "quant/calibration.h"
#include "quant/mlx_affine.h"

namespace optiq {

namespace fs = std::filesystem;
using json = nlohmann::json;

Result<ConvertResult> convert_model(const ConvertOptions& opts, ThreadPool& pool) {
  if (opts.reference != "bf16" && opts.reference != "auto")
    return Status::Unsupported("--reference " + opts.reference +
                               ": only bf16 is implemented (the uniform_4bit reference streams re-quantized layers "
                               "for models too large for RAM)");
  if (opts.method != "optiq" && opts.method != "static")
    return Status::InvalidArgument("--method " + opts.method + ": expected optiq or static");
  if (opts.method == "optiq" && opts.calibration_path.empty())
    return Status::InvalidArgument("convert: method optiq needs a calibration file (calibration_path)");
  if (!mlx_group_size_supported(opts.group_size))
    return Status::InvalidArgument("--group-size " + std::to_string(opts.group_size) + ": expected 32, 64 or 128");
  if (opts.candidate_bits.empty()) return Status::InvalidArgument("--candidate-bits: empty");
  for (int b : opts.candidate_bits)
    if (b != 16 && !mlx_bits_supported(b))
      return Status::InvalidArgument("--candidate-bits: " + std::to_string(b) + " not in {2,3,4,5,6,8,16}");
  if (opts.target_bpw <= 0) return Status::InvalidArgument("--target-bpw must be positive");

  OPTIQ_ASSIGN_OR_RETURN(std::shared_ptr<ModelDir> src, ModelDir::open(opts.model_dir));
  if (src->config.contains("quantization") || src->config.contains("quantization_config"))
    return Status::InvalidArgument(opts.model_dir + "/config.json: already quantized; convert needs the float model");
  const std::vector<QuantCandidate> cands = find_quantizable(*src->tensors, opts.group_size);
  std::vector<QuantCandidate> scored;
  for (auto& c : cands)
    if (!c.embedding) scored.push_back(c);
  if (scored.empty())
    return Status::InvalidArgument(opts.model_dir + ": no 2-D float linear weights with an input size divisible by " +
                                   std::to_string(opts.group_size));

  ConvertResult res;
  std::error_code ec;
  fs::create_directories(opts.out_dir, ec);
  if (ec) return Status::IOError(opts.out_dir + ": " + ec.message());
  const std::string& calib_path = opts.calibration_path;
  if (opts.method == "optiq") {
    CalibrationOptions co;
    co.n_samples = opts.n_calibration;
    co.seq_len = opts.seq_len;
    OPTIQ_ASSIGN_OR_RETURN(auto chunks, load_calibration(calib_path, opts.model_dir, co));
    res.n_calibration_chunks = static_cast<int>(chunks.size());
    if (opts.progress && static_cast<int>(chunks.size()) < opts.n_calibration)
      std::fprintf(opts.progress, "note: %s gives only %zu chunks of %d tokens (asked for %d)\n", calib_path.c_str(),
                   chunks.size(), opts.seq_len, opts.n_calibration);
    SensitivityOptions so;
    so.bits = opts.candidate_bits;
    so.group_size = opts.group_size;
    so.probe = opts.probe;
    so.checkpoint_path = (fs::path(opts.out_dir) / "sensitivity_checkpoint.json").string();
    so.progress = opts.progress;
    OPTIQ_ASSIGN_OR_RETURN(res.sensitivity, measure_sensitivity(opts.model_dir, chunks, so, pool));
  } else {
    res.sensitivity = static_sensitivity(scored, opts.candidate_bits);
  }

  AllocationOptions ao;
  ao.target_bpw = opts.target_bpw;
  ao.candidate_bits = opts.candidate_bits;
  OPTIQ_ASSIGN_OR_RETURN(res.allocation, allocate_bits(res.sensitivity, ao));
  int max_bits = 0;
  for (auto& [n, b] : res.allocation.bits) max_bits = std::max(max_bits, b);
  for (auto& [n, b] : res.allocation.bits)
    if (b < 16) res.modules[n] = {b, opts.group_size};
  for (auto& c : cands)  // unprobed modules (embeddings) get the allocation's maximum (§10.6)
    if (c.embedding && max_bits < 16) res.modules[c.module] = {max_bits, opts.group_size};

  const int lo = *std::min_element(opts.candidate_bits.begin(), opts.candidate_bits.end());
  const int hi = *std::max_element(opts.candidate_bits.begin(), opts.candidate_bits.end());
  json meta;
  meta["method"] = opts.method == "optiq" ? "optiq_mixed_precision" : "static_mixed_precision";
  meta["base_model"] = opts.model_dir;
  meta["reference"] = opts.method == "optiq" ? "bf16" : "structural_rules";
  meta["target_bpw"] = opts.target_bpw;
  meta["achieved_bpw"] = res.allocation.achieved_bpw;
  int n_hi = 0, n_lo = 0;
  for (auto& [n, b] : res.allocation.bits) {
    n_hi += b == hi;
    n_lo += b == lo;
  }
  meta["n_high_bits"] = n_hi;
  meta["n_low_bits"] = n_lo;
  meta["threshold"] = 0.0;
  meta["group_size"] = opts.group_size;
  meta["candidate_bits"] = opts.candidate_bits;
  if (opts.method == "optiq") {
    meta["calibration"] = {{"file", calib_path},
                           {"n_samples", res.n_calibration_chunks},
                           {"seq_len", opts.seq_len},
                           {"mask_fractions", opts.probe.mask_fractions}};
  }
  json per_layer = json::object();
  for (const auto& s : res.sensitivity) {
    const int b = res.allocation.bits.at(s.name);
    json e = {{"bits", b}, {"group_size", opts.group_size}};
    if (opts.method == "optiq") {
      e["kl"] = s.kl.at(b);
      if (s.kl_causal.count(b)) e["kl_causal"] = s.kl_causal.at(b);
      if (s.kl_block.count(b)) e["kl_block"] = s.kl_block.at(b);
    }
    per_layer[s.name] = e;
  }
  meta["per_layer"] = per_layer;

  QuantizedModelSpec spec;
  spec.modules = res.modules;
  spec.per_module_entries = true;
  spec.global_bits = 4;  // OptiQ converts with q_bits = 4; every module has its own entry anyway
  spec.global_group_size = opts.group_size;
  spec.metadata = meta;
  res.artifact_dir = (fs::path(opts.out_dir) / (opts.method == "optiq" ? "optiq_mixed" : "static_mixed")).string();
  OPTIQ_RETURN_IF_ERROR(write_quantized_model(opts.model_dir, res.artifact_dir, spec));

  if (!opts.skip_baselines) {
    QuantizedModelSpec u;
    for (auto& c : cands) u.modules[c.module] = {4, opts.group_size};
    u.per_module_entries = false;
    u.global_bits = 4;
    u.global_group_size = opts.group_size;
    res.baseline_dir = (fs::path(opts.out_dir) / "uniform_4bit").string();
    OPTIQ_RETURN_IF_ERROR(write_quantized_model(opts.model_dir, res.baseline_dir, u));
  }
  return res;
}

}  // namespace optiq
