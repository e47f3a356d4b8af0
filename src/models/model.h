// The narrow seam between models and everything else.
//
// A model forwards a chunk of tokens at given positions under a mask mode against a cache it made,
// writing logits. Decoders (src/decode), the server and the CLI use only this interface plus
// ModelInfo; nothing outside src/models switches on the architecture.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "io/lora_adapter.h"

namespace optiq {

// Which keys a query row sees. Every mode is a contiguous key range per row, so kernels take
// per-row [begin, end) bounds (sliding windows narrow `begin`).
enum class MaskMode {
  kCausal,  // key j visible to query at position i iff j <= i
  kBlock,   // global block grid of `block_len`: visible iff j / block_len <= i / block_len
  kFull,    // every key in the cache and the chunk (canvas decoders)
};

// Per-sequence state owned by the caller: KV, recurrent/conv tails, and the model's scratch.
// Thread safety: none; one forward at a time per cache.
class Cache {
 public:
  // Opaque saved state; only valid for the cache that made it, until that cache is truncated below it.
  struct Snapshot {
    virtual ~Snapshot() = default;
  };
  virtual ~Cache() = default;
  // Number of positions whose keys/values are held.
  virtual int64_t length() const = 0;
  virtual int64_t capacity() const = 0;
  virtual std::unique_ptr<Snapshot> snapshot() const = 0;
  virtual void restore(const Snapshot& s) = 0;
  // Rolls back to `new_length` <= length(). Models with recurrent state (dhara's Canon convs)
  // rebuild it from the input window recorded by the last forward, so only lengths inside that
  // forward's chunk (or the current length) are allowed; otherwise InvalidArgument.
  virtual Status truncate(int64_t new_length) = 0;
};

struct ForwardBatch {
  std::span<const int32_t> tokens;  // [T]
  // Absolute position of tokens[0]. Appending forwards require pos0 == cache.length().
  int64_t pos0 = 0;
  MaskMode mask = MaskMode::kCausal;
  int block_len = 32;         // grid for MaskMode::kBlock
  bool write_cache = true;    // false: the chunk reads the cache but leaves it unchanged
  bool last_logits_only = false;  // true: write only the last row's logits
  // true: every row's logits are computed bit for bit as a one-row causal forward would compute them
  // (no kernels whose per-row arithmetic depends on the row count). Self-speculation's verify
  // forward sets it, so its tokens are greedy AR's.
  bool row_invariant = false;
  // Optional [T, C] input embeddings replacing the token embedding where `embed_override[t]` is
  // true (image soft tokens). Either both empty or sized T.
  // Models with bidirectional image blocks treat each maximal run of overridden rows as one image
  // (its rows see each other), so an image's rows must arrive in one forward.
  std::span<const float> input_embeds;
  std::vector<bool> embed_override;
  // Optional [T, V] conditioning logits for models with self-conditioning (DiffusionGemma): the
  // previous denoising step's temperature-scaled logits; the model applies its own rounding.
  std::span<const float> self_condition;
  // Optional LoRA adapter applied unmerged to the linears it names (y = W x + scale · (x a) b); the
  // model's base weights are untouched, so one loaded model serves several adapters.
  const LoraAdapter* adapter = nullptr;
};

// ---- Training (src/train builds sequences from data rows and an objective) ----

// One training sequence. Positions are row indices 0 … T−1.
struct TrainSequence {
  std::vector<int32_t> tokens;   // [T]
  // Row t sees the rows [0, key_end[t]) (every objective's visibility is a prefix per row). Empty:
  // the model's own mask (causal; DiffusionGemma: a causal encoder and a bidirectional canvas).
  std::vector<int64_t> key_end;
  std::vector<int32_t> targets;  // [T]: the id row t's logits are trained towards, or -1 (no loss)
  float weight = 1.0f;           // each selected target contributes weight · CE to the loss
  // Canvas models: rows [canvas_begin, T) are the decoder's canvas over the encoded rows before it.
  int64_t canvas_begin = -1;
};

struct TrainOptions {
  float lora_dropout = 0.0f;     // on the LoRA input only (L.1)
  uint64_t dropout_seed = 0;     // this step's draw
  bool grad_checkpoint = true;   // keep layer inputs only; recompute a layer's activations in backward
};

struct TrainStats {
  double loss = 0;               // Σ weight · CE over the selected targets
  int64_t targets = 0;           // selected targets
  int64_t tokens = 0;            // rows forwarded
  size_t peak_activation_bytes = 0;
};

// Full-parameter training state: the model's weights as fp32 tensors under their checkpoint names
// and shapes, owned by this object (never the memory-mapped checkpoint).
struct ParamTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};
using ParamSet = std::map<std::string, ParamTensor>;
// Same names and shapes, all zeros (gradient accumulators, optimizer moments).
ParamSet zeros_like(const ParamSet& params);

class FullTrainable {
 public:
  virtual ~FullTrainable() = default;
  // Updated in place by the caller (the optimizer) between steps; the next step reads them.
  virtual ParamSet& parameters() = 0;
  // Adds ∂loss/∂p of every parameter into `grads` (zeros_like(parameters()) shaped) and returns the
  // loss of these sequences.
  virtual Result<TrainStats> accumulate_gradients(std::span<const TrainSequence> batch, ParamSet& grads,
                                                  const TrainOptions& opts, ThreadPool& pool) = 0;
  // Writes DIR/config.json and DIR/model.safetensors (F32 or BF16), each atomically.
  virtual Status save(const std::string& dir, DType dtype) const = 0;
};

// A model that can be trained: gradients of the loss with respect to LoRA parameters. Loss and
// gradients are fp32, base weights used as their exact fp32 values (L.8).
class Trainable {
 public:
  virtual ~Trainable() = default;
  // The module paths LoRA may wrap in the last `num_layers` layers (−1: all), in model order, with
  // their [in, out] sizes: "model.layers.0.self_attn.q_proj" → {in, out}.
  virtual std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_targets(int64_t num_layers) const = 0;
  // Adds ∂loss/∂(a, b) of every module of `params` into `grads` (same modules and shapes) and returns
  // the loss of these sequences.
  virtual Result<TrainStats> accumulate_lora_gradients(std::span<const TrainSequence> batch,
                                                       const LoraAdapter& params, LoraAdapter& grads,
                                                       const TrainOptions& opts, ThreadPool& pool) const = 0;
  // A full-parameter trainer starting from this model's weights (copied to fp32).
  virtual Result<std::unique_ptr<FullTrainable>> make_full_trainable() const {
    return Status::Unsupported("full-parameter training is not implemented for this architecture");
  }
};

// What decoders may know about a model: read from config.json / generation_config.json.
struct ModelInfo {
  std::string model_type;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t n_layers = 0;
  int64_t max_position = 0;
  int32_t mask_token_id = -1;     // -1: no diffusion mode
  std::vector<int32_t> eos_ids;   // union of config and generation_config ids
  int block_len = 0;              // dhara: 32-token diffusion blocks; 0 if not a block-diffusion model
  int canvas_length = 0;          // DiffusionGemma canvases; 0 otherwise
  // Image input (models with a vision tower; -1 otherwise): the chat template's image item expands
  // to boi + n × image_token + eoi, the n soft tokens coming from Model::embed_image.
  int32_t image_token_id = -1;
  int32_t boi_token_id = -1;
  int32_t eoi_token_id = -1;
  bool supports_causal = true;
  bool supports_block = false;
  // Weight bytes touched by one single-token forward (for bandwidth reporting).
  size_t weight_bytes_per_token = 0;
  // Cache bytes one single-token forward reads besides the weights: K/V per cached position it
  // attends (all layers), and recurrent state (dhara's Canon conv rows) per forward. The memory
  // roofline of a decode step is weights + state + kv · positions; at long contexts the K/V term
  // rivals the weights.
  size_t kv_bytes_per_position = 0;
  size_t state_bytes_per_token = 0;
  size_t total_weight_bytes = 0;
};

// Soft tokens of one image: [n_tokens, hidden_size] fp32 rows, placed unscaled at n_tokens
// consecutive image-token positions through ForwardBatch::input_embeds / embed_override.
struct ImageEmbedding {
  int64_t n_tokens = 0;
  std::vector<float> embeds;
};

// A linear layer an adapter may wrap (ForwardBatch::adapter): its module path, the checkpoint's
// weight name without ".weight" ("model.layers.0.self_attn.q_proj"), and its sizes (y[out] = W x[in]).
struct LoraTarget {
  std::string module;
  int64_t in = 0, out = 0;
};

class Model {
 public:
  virtual ~Model() = default;
  virtual const ModelInfo& info() const = 0;
  // A cache holding up to `max_tokens` positions.
  virtual std::unique_ptr<Cache> make_cache(int64_t max_tokens) const = 0;
  // Writes logits [T, V] (or [1, V] with last_logits_only) to `logits`, fp32.
  // Fails (and leaves the cache unchanged) on out-of-range ids, positions or capacity.
  virtual Status forward(const ForwardBatch& batch, Cache& cache, float* logits, ThreadPool& pool) const = 0;
  // Runs the vision tower on an RGB image (`rgb` [height, width, 3] uint8, row-major), resizing it
  // as the model's processor does. Unsupported for models without a vision tower.
  virtual Result<ImageEmbedding> embed_image(std::span<const uint8_t> rgb, int width, int height,
                                             ThreadPool& pool) const {
    return Status::Unsupported(info().model_type + ": no vision tower");
  }
  // The training interface, or null for an architecture that cannot be trained yet.
  virtual const Trainable* trainable() const { return nullptr; }
  // Every linear ForwardBatch::adapter may name, in model order; empty for an architecture that
  // applies no adapters. A forward fails (InvalidArgument) on an adapter naming anything else, or
  // with other sizes; validate_adapter says so once, at load.
  virtual std::vector<LoraTarget> adapter_targets() const { return {}; }
};

// Ok when every module of `adapter` is one of model.adapter_targets() with the same sizes; else
// InvalidArgument naming the adapter, the first offending module, and both sizes (or the targets'
// naming pattern when the module does not exist).
Status validate_adapter(const Model& model, const LoraAdapter& adapter);

// A view of `base` whose forwards apply `adapter` (ForwardBatch::adapter), unless a batch names
// its own: decoders, evaluation and the server run an adapted model through the plain Model
// interface. Everything else (info, caches, vision tower) is the base's. `base` must outlive the
// view; validate the adapter first (forwards fail on a mismatch).
std::unique_ptr<Model> with_adapter(const Model& base, std::shared_ptr<const LoraAdapter> adapter);

// A caller-owned float tensor that replaces a checkpoint tensor at load (see LoadOptions).
struct TensorOverride {
  DType dtype = DType::kF32;                          // F32, BF16 or F16
  std::vector<int64_t> shape;                         // the logical shape ([out, in] for a linear)
  std::shared_ptr<const std::vector<uint8_t>> bytes;  // numel · dtype_size bytes, shared with the model
};

struct LoadOptions {
  // Tensor name → replacement, consulted before the checkpoint's files. Used by quantization
  // (src/quant/sensitivity) to run a model with one linear fake-quantized. Replacing `P.weight`
  // of a module with a float tensor makes P a dense linear even if the checkpoint quantizes it
  // (its .scales/.biases are then ignored). Each name must exist in the checkpoint.
  std::map<std::string, TensorOverride> tensor_overrides;
  // Give 4- and 8-bit quantized matrices a row-interleaved copy for the decode matmul
  // (kernels/kernels.h add_decode_layout) where the CPU has AVX512-VNNI: AR decode streams it ~20% faster,
  // for the matrices' bytes once more in memory. Off for loads that only run block forwards.
  bool repack = true;
};

// Loads a model directory (config.json + safetensors) through the registry keyed by model_type.
Result<std::unique_ptr<Model>> load_model(const std::string& dir, const LoadOptions& opts = {});

}  // namespace optiq
