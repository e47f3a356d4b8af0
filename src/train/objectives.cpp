// Objectives → TrainSequences, specs/optiq-surface.md L.5 and L.8, specs/dhara.md §7.
#include "train/objectives.h"

#include <algorithm>

#include "decode/canvas.h"

namespace optiq {

Result<Objective> parse_objective(const std::string& name) {
  if (name == "ar") return Objective::kAr;
  if (name == "joint") return Objective::kJoint;
  if (name == "canvas") return Objective::kCanvas;
  return Status::InvalidArgument("--objective must be ar, joint or canvas, got \"" + name + "\"");
}

const char* objective_name(Objective o) {
  switch (o) {
    case Objective::kAr: return "ar";
    case Objective::kJoint: return "joint";
    case Objective::kCanvas: return "canvas";
  }
  return "?";
}

Objective default_objective(const ModelInfo& info) { return info.canvas_length > 0 ? Objective::kCanvas : Objective::kAr; }

namespace {

// pad_token_id of `j` (an integer, or absent). Corruption when mistyped.
Result<bool> read_pad(const nlohmann::json& j, const std::string& file, int32_t* out) {
  if (!j.is_object() || !j.contains("pad_token_id") || j["pad_token_id"].is_null()) return false;
  const auto& v = j["pad_token_id"];
  if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() > INT32_MAX)
    return Status::Corruption(file + ": pad_token_id must be a non-negative integer, got " + v.dump());
  *out = v.get<int32_t>();
  return true;
}

}  // namespace

Result<ObjectiveParams> objective_params(Objective kind, const ModelInfo& info, const nlohmann::json& config,
                                         const nlohmann::json& generation_config) {
  ObjectiveParams p;
  p.kind = kind;
  p.vocab_size = info.vocab_size;
  const std::string model = info.model_type.empty() ? std::string("the model") : info.model_type;
  switch (kind) {
    case Objective::kAr:
      if (!info.supports_causal)
        return Status::InvalidArgument("--objective ar: " + model + " has no causal mode");
      break;
    case Objective::kJoint:
      if (info.mask_token_id < 0 || info.block_len <= 0 || !info.supports_block)
        return Status::InvalidArgument("--objective joint needs a block-diffusion model (a mask token and a block "
                                       "mode); " + model + " has none");
      p.mask_token_id = info.mask_token_id;
      p.block_len = info.block_len;
      break;
    case Objective::kCanvas: {
      if (info.canvas_length <= 0)
        return Status::InvalidArgument("--objective canvas needs a canvas-diffusion model (canvas_length); " + model +
                                       " has none");
      p.canvas_length = info.canvas_length;
      if (generation_config.is_object() && !generation_config.empty()) {
        OPTIQ_ASSIGN_OR_RETURN(CanvasOptions co, canvas_options_from_generation_config(generation_config));
        p.t_min = co.t_min;
        p.t_max = co.t_max;
      }
      if (!(p.t_min >= 0 && p.t_max <= 1 && p.t_min <= p.t_max))
        return Status::InvalidArgument("generation_config.json: t_min " + std::to_string(p.t_min) + " and t_max " +
                                       std::to_string(p.t_max) + " must satisfy 0 <= t_min <= t_max <= 1");
      bool found = false;
      OPTIQ_ASSIGN_OR_RETURN(found, read_pad(generation_config, "generation_config.json", &p.pad_token_id));
      if (!found) {
        OPTIQ_ASSIGN_OR_RETURN(found, read_pad(config, "config.json", &p.pad_token_id));
      }
      if (!found && config.is_object() && config.contains("text_config")) {
        OPTIQ_ASSIGN_OR_RETURN(found, read_pad(config["text_config"], "config.json: text_config", &p.pad_token_id));
      }
      if (p.vocab_size > 0 && p.pad_token_id >= p.vocab_size)
        return Status::Corruption("pad_token_id " + std::to_string(p.pad_token_id) + " is outside the vocabulary of " +
                                  std::to_string(p.vocab_size));
      break;
    }
  }
  return p;
}

// ---- ar ----

int64_t ar_target_count(const TrainRow& row) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  const int64_t s = std::max<int64_t>(row.offset, 1);
  return std::max<int64_t>(0, n - s);
}

TrainSequence ar_sequence(const TrainRow& row) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  OPTIQ_CHECK(n >= 2);
  const int64_t s = std::max<int64_t>(row.offset, 1);
  TrainSequence q;
  // inputs = tokens[:-1]: the last token is only ever a target (L.5).
  q.tokens.assign(row.tokens.begin(), row.tokens.end() - 1);
  q.targets.assign(static_cast<size_t>(n - 1), -1);
  for (int64_t j = s; j < n; ++j) q.targets[static_cast<size_t>(j - 1)] = row.tokens[static_cast<size_t>(j)];
  return q;
}

// ---- joint ----

DiffusionNoise draw_diffusion_noise(const TrainRow& row, const ObjectiveParams& p, SplitMix64& rng) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  const int64_t s = std::max<int64_t>(row.offset, 1), B = p.block_len;
  DiffusionNoise d;
  if (n <= s) return d;
  const int64_t n_blocks = (n - s + B - 1) / B;  // blocks starting before n
  d.block_begin = s + B * static_cast<int64_t>(rng.next() % static_cast<uint64_t>(n_blocks));
  const double t = rng.uniform();
  const double mask_p = (1.0 - p.mask_eps) * t + p.mask_eps;
  const int64_t end = std::min(n, d.block_begin + B);
  for (int64_t j = d.block_begin; j < end; ++j)
    if (rng.uniform() < mask_p) d.replaced.push_back(j);
  if (d.replaced.empty())
    d.replaced.push_back(d.block_begin + static_cast<int64_t>(rng.next() % static_cast<uint64_t>(end - d.block_begin)));
  return d;
}

TrainSequence diffusion_sequence(const TrainRow& row, const DiffusionNoise& noise, const ObjectiveParams& p) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  const int64_t s = std::max<int64_t>(row.offset, 1), B = p.block_len, b0 = noise.block_begin;
  OPTIQ_CHECK(!noise.replaced.empty() && b0 >= s && b0 < n);
  const int64_t T = b0 + B;
  TrainSequence q;
  q.tokens.assign(row.tokens.begin(), row.tokens.begin() + b0);
  q.tokens.resize(static_cast<size_t>(T), p.mask_token_id);
  for (int64_t j = b0; j < std::min(n, T); ++j) q.tokens[static_cast<size_t>(j)] = row.tokens[static_cast<size_t>(j)];
  q.targets.assign(static_cast<size_t>(T), -1);
  for (int64_t j : noise.replaced) {
    q.tokens[static_cast<size_t>(j)] = p.mask_token_id;
    q.targets[static_cast<size_t>(j)] = row.tokens[static_cast<size_t>(j)];
  }
  // Row r belongs to call 0 = [0, s) or to the block call [s + B·i, s + B·i + B); it sees every earlier
  // call and the rows of its own call in global blocks ≤ its own: a prefix ending at
  // min(end of its call, (r / B + 1)·B).
  q.key_end.resize(static_cast<size_t>(T));
  for (int64_t r = 0; r < T; ++r) {
    const int64_t call_end = r < s ? s : s + B * ((r - s) / B + 1);
    q.key_end[static_cast<size_t>(r)] = std::min(call_end, (r / B + 1) * B);
  }
  return q;
}

// ---- canvas ----

int64_t canvas_chunk_count(const TrainRow& row, const ObjectiveParams& p) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  const int64_t c = n - std::min(row.offset, n);
  return (c + p.canvas_length - 1) / p.canvas_length;
}

CanvasNoise draw_canvas_noise(const ObjectiveParams& p, SplitMix64& rng) {
  CanvasNoise c;
  const auto Lc = static_cast<size_t>(p.canvas_length);
  c.t = p.t_min + (p.t_max - p.t_min) * rng.uniform();
  c.corrupt.assign(Lc, 0);
  c.ids.assign(Lc, 0);
  for (size_t i = 0; i < Lc; ++i) {
    if (rng.uniform() < c.t) {
      c.corrupt[i] = 1;
      c.ids[i] = rng.token(p.vocab_size);
    }
  }
  return c;
}

TrainSequence canvas_sequence(const TrainRow& row, int64_t chunk, const CanvasNoise& noise, const ObjectiveParams& p) {
  const auto n = static_cast<int64_t>(row.tokens.size());
  const int64_t Lc = p.canvas_length, begin = row.offset + chunk * Lc;
  OPTIQ_CHECK(begin < n && static_cast<int64_t>(noise.corrupt.size()) == Lc);
  TrainSequence q;
  q.tokens.assign(row.tokens.begin(), row.tokens.begin() + begin);
  q.targets.assign(static_cast<size_t>(begin), -1);
  q.canvas_begin = begin;
  for (int64_t i = 0; i < Lc; ++i) {
    const int32_t y = begin + i < n ? row.tokens[static_cast<size_t>(begin + i)] : p.pad_token_id;
    const bool c = noise.corrupt[static_cast<size_t>(i)] != 0;
    q.tokens.push_back(c ? noise.ids[static_cast<size_t>(i)] : y);
    q.targets.push_back(c ? y : -1);
  }
  return q;
}

// ---- a batch ----

BatchSequences make_batch_sequences(std::span<const TrainRow* const> rows, const ObjectiveParams& p, SplitMix64& rng,
                                    float scale) {
  BatchSequences out;
  std::vector<size_t> diffusion;  // indices into out.seqs of the noised sequences
  for (const TrainRow* row : rows) {
    if (p.kind == Objective::kCanvas) {
      const int64_t chunks = canvas_chunk_count(*row, p);
      for (int64_t i = 0; i < chunks; ++i) {
        CanvasNoise noise = draw_canvas_noise(p, rng);
        TrainSequence q = canvas_sequence(*row, i, noise, p);
        int64_t corrupted = 0;
        for (int32_t t : q.targets) corrupted += t >= 0;
        out.noised_targets += corrupted;
        if (corrupted > 0) out.seqs.push_back(std::move(q));  // a clean canvas adds nothing to the loss
      }
      continue;
    }
    if (ar_target_count(*row) == 0) continue;
    out.ar_targets += ar_target_count(*row);
    out.seqs.push_back(ar_sequence(*row));
    if (p.kind == Objective::kJoint) {
      DiffusionNoise noise = draw_diffusion_noise(*row, p, rng);
      out.noised_targets += static_cast<int64_t>(noise.replaced.size());
      diffusion.push_back(out.seqs.size());
      out.seqs.push_back(diffusion_sequence(*row, noise, p));
    }
  }
  if (p.kind == Objective::kCanvas) {
    out.targets = out.noised_targets;
    const float w = scale / static_cast<float>(std::max<int64_t>(out.noised_targets, 1));
    for (auto& q : out.seqs) q.weight = w;
    return out;
  }
  out.targets = out.ar_targets + out.noised_targets;
  const float w_ar = out.ar_targets > 0 ? scale / static_cast<float>(out.ar_targets) : 0.0f;
  const float w_diff =
      out.noised_targets > 0 ? scale * p.diffusion_weight / static_cast<float>(out.noised_targets) : 0.0f;
  for (auto& q : out.seqs) q.weight = w_ar;
  for (size_t i : diffusion) out.seqs[i].weight = w_diff;
  return out;
}

}  // namespace optiq
