// Training objectives: one batch of rows (tokens, offset) → the TrainSequences a Trainable model
// forwards, with targets, per-row visibility and weights. specs/optiq-surface.md "LoRA training:
// exact semantics" L.5 (ar) and L.8 (joint, canvas); specs/dhara.md §7. Model-independent: a model
// sees only TrainSequence (models/model.h) and its traits come from ModelInfo.
//
// Loss of a batch = Σ over sequences of weight · Σ CE(logits_t, targets_t) over targets_t >= 0.
//   ar      next-token CE: targets tokens[j] predicted at row j − 1 for max(offset, 1) ≤ j ≤ n − 1; one
//           token-weighted mean over the batch (weight = 1 / all selected targets of the batch).
//   joint   ar + 0.3 · block-diffusion CE: per row one 32-token block of its generation grid (blocks
//           start at s = max(offset, 1)) is noised with mask_token_id; the logits of a replaced
//           position predict its clean token (no shift); mean over the batch's replaced positions.
//   canvas  the completion tokens[offset:] in canvas_length chunks, each one example: the encoder
//           reads tokens[: offset + i·Lc], the canvas holds the chunk (padded with pad_token_id)
//           corrupted with uniform random ids at rate t ~ U(t_min, t_max); CE on the corrupted
//           positions against the clean ones, mean over the batch's corrupted positions.
// The random draws come from the caller's SplitMix64 in a fixed order (below), so a seed and a
// batch reproduce the same sequences.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "decode/rng.h"
#include "models/model.h"
#include "train/dataset.h"

namespace optiq {

enum class Objective { kAr, kJoint, kCanvas };
// "ar", "joint", "canvas"; InvalidArgument otherwise.
Result<Objective> parse_objective(const std::string& name);
const char* objective_name(Objective o);
// The model's native objective: canvas for canvas models (ModelInfo::canvas_length > 0), else ar.
Objective default_objective(const ModelInfo& info);

struct ObjectiveParams {
  Objective kind = Objective::kAr;
  // joint (dhara.md §7: block 32, α 0.3, p = (1 − ε)·t + ε with ε = 1e-3)
  int32_t mask_token_id = -1;
  int64_t block_len = 32;
  float diffusion_weight = 0.3f;
  double mask_eps = 1e-3;
  // canvas
  int64_t canvas_length = 0;
  double t_min = 0.4, t_max = 0.8;
  int32_t pad_token_id = 0;
  int64_t vocab_size = 0;
};

// The parameters of `kind` for a model: mask_token_id and block_len from ModelInfo (joint needs a
// block-diffusion model), canvas_length and vocab_size from ModelInfo, t_min / t_max from
// generation_config.json (default 0.4 / 0.8), pad_token_id from generation_config.json, else
// config.json, else its text_config, else 0. InvalidArgument when the model lacks what `kind` needs.
Result<ObjectiveParams> objective_params(Objective kind, const ModelInfo& info, const nlohmann::json& config,
                                         const nlohmann::json& generation_config);

// ---- ar (L.5) ----

// Targets of a row: j in [max(offset, 1), n − 1], none for n < 2.
int64_t ar_target_count(const TrainRow& row);
// The row's AR sequence: tokens[0 : n − 1], targets[j − 1] = tokens[j] for the selected j, causal
// visibility (key_end empty), weight 1. Call only for rows with ar_target_count > 0.
TrainSequence ar_sequence(const TrainRow& row);

// ---- joint (L.8) ----

// One row's diffusion draw: which block, and which of its positions are replaced.
struct DiffusionNoise {
  int64_t block_begin = 0;           // s + 32·k
  std::vector<int64_t> replaced;     // positions j in [block_begin, min(n, block_begin + 32)), increasing
};
// Draws, in this order: k = next() % (number of blocks starting before n); t = uniform(),
// p = (1 − ε)·t + ε; for each position j of the block with j < n, replaced iff uniform() < p; if none
// was, one position block_begin + next() % (count of positions < n). Rows with no target (n ≤ s) draw
// nothing and return an empty `replaced`.
DiffusionNoise draw_diffusion_noise(const TrainRow& row, const ObjectiveParams& p, SplitMix64& rng);
// The diffusion sequence of a row for a draw: tokens = x[0 : block_begin] ‖ 32 positions (replaced
// ones and j ≥ n are mask_token_id, the rest x_j); targets = x_j at replaced positions, −1 elsewhere;
// key_end[r] = min(end of r's call, (r / 32 + 1)·32), the calls being [0, s) and each block
// [s + 32i, s + 32i + 32) (the cached block-diffusion decoder's visibility); weight 1.
TrainSequence diffusion_sequence(const TrainRow& row, const DiffusionNoise& noise, const ObjectiveParams& p);

// ---- canvas (L.8) ----

// Number of canvas examples of a row: ceil((n − offset) / Lc), 0 when the completion is empty.
int64_t canvas_chunk_count(const TrainRow& row, const ObjectiveParams& p);
// One chunk's draw: t, the corrupted positions and their random ids.
struct CanvasNoise {
  double t = 0;
  std::vector<uint8_t> corrupt;   // [Lc]
  std::vector<int32_t> ids;       // [Lc]: the random id at corrupted positions (unused elsewhere)
};
// Draws t = t_min + (t_max − t_min)·uniform(), then per canvas position: corrupted iff uniform() < t,
// and if so its id = token(vocab_size).
CanvasNoise draw_canvas_noise(const ObjectiveParams& p, SplitMix64& rng);
// Chunk `chunk` of a row: tokens = tokens[: begin] ‖ canvas, begin = offset + chunk·Lc; canvas
// position i holds ids[i] where corrupted, else y_i (the chunk, padded with pad_token_id); targets y_i
// at corrupted positions; canvas_begin = begin; key_end empty (the model's own mask); weight 1.
TrainSequence canvas_sequence(const TrainRow& row, int64_t chunk, const CanvasNoise& noise, const ObjectiveParams& p);

// ---- a batch ----

struct BatchSequences {
  std::vector<TrainSequence> seqs;
  int64_t targets = 0;       // all selected targets (ar + diffusion, or canvas)
  int64_t ar_targets = 0;
  int64_t noised_targets = 0;  // joint: replaced positions; canvas: corrupted positions
};
// The sequences of one batch with their weights: ar 1/ar_targets; joint additionally
// diffusion_weight/replaced for the diffusion sequences; canvas 1/max(corrupted, 1). Every weight
// is multiplied by `scale` (1/k under gradient accumulation). Rows in batch order; joint draws row by
// row, canvas chunk by chunk. Rows without targets (and canvases without a corrupted position) add no
// sequence.
BatchSequences make_batch_sequences(std::span<const TrainRow* const> rows, const ObjectiveParams& p, SplitMix64& rng,
                                    float scale = 1.0f);

}  // namespace optiq
