// `optiq convert`: measure, allocate, write (specs/mlx-format.md §8–§13).
//
// Output layout under out_dir:
//   optiq_mixed/   the artifact (static_mixed/ with method "static")
//   uniform_4bit/  every quantizable module at 4 bits (global block only), unless skip_baselines
//   sensitivity_checkpoint.json  per-layer KL, resumable (method "optiq")
// Embeddings are quantized at the allocation's maximum bits (§10.6); modules whose input size is
// not a multiple of the group size stay float.
#pragma once

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "quant/allocation.h"
#include "quant/kl.h"
#include "quant/sensitivity.h"
#include "quant/writer.h"

namespace optiq {

struct ConvertOptions {
  std::string model_dir;
  std::string out_dir;
  double target_bpw = 4.5;
  std::vector<int> candidate_bits{4, 8};
  int group_size = 64;
  std::string method = "optiq";  // "optiq" (measured) or "static" (structural rules)
  int n_calibration = 24;
  int seq_len = 512;
  std::string calibration_path;  // JSONL calibration mix; required by method "optiq"
  std::string reference = "bf16";  // only bf16 (and "auto", which resolves to bf16) are implemented
  bool skip_baselines = false;
  ProbeOptions probe;
  std::FILE* progress = nullptr;  // progress bar and notes (stderr in the CLI)
};

struct ConvertResult {
  std::string artifact_dir;
  std::string baseline_dir;  // "" with skip_baselines
  std::vector<LayerSensitivity> sensitivity;
  Allocation allocation;
  std::map<std::string, ModuleQuant> modules;  // what the artifact quantizes, embeddings included
  int n_calibration_chunks = 0;
};

Result<ConvertResult> convert_model(const ConvertOptions& opts, ThreadPool& pool);

}  // namespace optiq
