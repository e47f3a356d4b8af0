// Pieces shared by the models' training forwards and backwards (models/dhara_train.cpp,
// models/diffusion_gemma_train.cpp): the seven LoRA slots of a transformer layer and how an adapter's
// modules bind to them, the LoRA input dropout, linear + LoRA forward and backward over a frozen base,
// and the tied soft-capped head with its loss. Models-internal; specs/optiq-surface.md L.1, L.8.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "kernels/train.h"
#include "models/model.h"

namespace optiq {

// LoRA slots of a layer, in module order (L.2).
enum BlockLoraSlot { kLoraQ = 0, kLoraK, kLoraV, kLoraO, kLoraGate, kLoraUp, kLoraDown, kNumLoraSlots };
inline constexpr const char* kLoraSlotNames[kNumLoraSlots] = {"self_attn.q_proj", "self_attn.k_proj",
                                                               "self_attn.v_proj", "self_attn.o_proj",
                                                               "mlp.gate_proj",    "mlp.up_proj",
                                                               "mlp.down_proj"};

// One layer's bound modules: parameters p and their gradient accumulators g (null: no LoRA there).
struct BlockLora {
  const LoraModule* p[kNumLoraSlots] = {};
  LoraModule* g[kNumLoraSlots] = {};
};

// The model's LoRA-able linears: name(l, s) is the module path, shape(l, s) its {in, out} ({0, 0}:
// layer l has no such linear).
struct LoraSlotTable {
  int64_t n_layers = 0;
  std::function<std::string(int64_t layer, int slot)> name;
  std::function<std::pair<int64_t, int64_t>(int64_t layer, int slot)> shape;
};

// The targets of the last `num_layers` layers (−1: all) in model order (Trainable::lora_targets).
std::vector<std::pair<std::string, std::pair<int64_t, int64_t>>> lora_slot_targets(const LoraSlotTable& table,
                                                                                  int64_t num_layers);

// Binds every module of `params` to its slot, with `grads` holding the same modules and shapes.
// InvalidArgument naming the module for a module that is no target of the model ("… of this
// `model_name` model"), a shape that differs from the linear's, or a gradient adapter that lacks it.
// `first_layer` receives the first layer with a module (n_layers when none).
Result<std::vector<BlockLora>> bind_lora(const LoraSlotTable& table, const LoraAdapter& params, LoraAdapter& grads,
                                         const std::string& model_name, int64_t* first_layer);

// Where one linear's LoRA input dropout is drawn: the mask of element (t, i) is a hash of the step's
// seed, the sequence, layer, slot and element, so a recomputed forward (gradient checkpointing)
// draws the same mask.
struct LoraSite {
  const TrainOptions* opts = nullptr;
  int64_t sequence = 0;
  int64_t layer = 0;
  int slot = 0;
  float scale = 1.0f;  // the adapter's scale
};

// The LoRA activations of one linear that its backward reads.
struct LoraActs {
  std::vector<float> xd;  // [T, in] dropped-out input (only with dropout)
  std::vector<float> xa;  // [T, r] xd · a
  size_t bytes() const { return (xd.size() + xa.size()) * sizeof(float); }
};

// y[T, out] = in[T, in] · Wᵀ (exact fp32) + scale · (xd · a) · b when `m` is non-null.
void lora_linear(float* y, const float* in, int64_t T, const Weight& w, const LoraModule* m, const LoraSite& site,
                 LoraActs& acts, const KernelContext& ctx);

// dx_in (+ with `accumulate`)= dy · W + LoRA's input gradient; adds the LoRA parameter gradients into `g`.
void lora_linear_backward(float* dx_in, const float* dy, const float* in, int64_t T, const Weight& w,
                          const LoraModule* m, LoraModule* g, const LoraSite& site, bool accumulate,
                          const LoraActs& acts, std::vector<float>& scratch, const KernelContext& ctx);

// The tied head and loss over one sequence's final hidden states x [T, C]: hn = norm(x),
// z = hn · Eᵀ, loss = Σ weight · CE(cap · tanh(z / cap), targets[t]) over rows with targets[t] >= 0
// (cap <= 0: no soft-cap), in chunks of rows so that [rows, V] logits stay small. Writes dx [T, C],
// the gradient of the loss with respect to x (zero when no row has a target); returns the loss.
// `peak_logit_bytes` receives the largest logits chunk's bytes, `n_targets` the selected rows.
double tied_head_loss(float* dx, const float* x, int64_t T, int64_t C, int64_t V, const Weight& norm, float eps,
                      const Weight& embed, float cap, const int32_t* targets, float weight, int64_t* n_targets,
                      size_t* peak_logit_bytes, const KernelContext& ctx);

// The tied, soft-capped LM head of tied_head_loss.
struct TiedHead {
  const Weight* norm = nullptr;   // [C] final norm
  const Weight* embed = nullptr;  // [V, C] embedding, used as the head
  int64_t vocab = 0;
  float eps = 1e-6f;
  float softcap = 0.0f;           // <= 0: none
};

// One sequence through a stack of `n_layers` layers, the tied head and back, with `x` [T, C] the
// embedded input and `seq` giving the targets and weight:
//   forward(l, x, x_out, acts)    runs layer l, keeping in `acts` what its backward reads;
//   backward(l, x, dy, dx, acts)  writes dx from dy, adding the LoRA gradients.
// Only the layers from `first_layer` on are gone back through (nothing trainable lies below), and
// none when no row has a target. With `checkpoint` only those layers' inputs are kept and each layer's
// activations are recomputed from its input just before its backward; without, every layer's Acts
// are kept. Adds the loss, targets and tokens to `stats` and raises its peak_activation_bytes to the
// peak held here (Acts::bytes(), layer inputs, the head's logits, `backward_bytes` of temporaries per
// backward call).
template <typename Acts, typename Forward, typename Backward>
void train_sequence_pass(const TrainSequence& seq, std::vector<float> x, int64_t n_layers, int64_t first_layer,
                         int64_t C, const TiedHead& head, bool checkpoint, size_t backward_bytes,
                         const Forward& forward, const Backward& backward, TrainStats& stats,
                         const KernelContext& ctx) {
  const int64_t T = static_cast<int64_t>(seq.tokens.size());
  const bool keep_all = !checkpoint;
  std::vector<std::vector<float>> xs(static_cast<size_t>(n_layers));
  std::vector<Acts> acts(keep_all ? static_cast<size_t>(n_layers) : 1);
  size_t held = 0, peak = 0;
  for (int64_t l = 0; l < n_layers; ++l) {
    std::vector<float> next(static_cast<size_t>(T * C));
    Acts& a = acts[keep_all ? static_cast<size_t>(l) : 0];
    forward(l, x.data(), next.data(), a);
    if (l >= first_layer) {
      xs[static_cast<size_t>(l)] = std::move(x);
      held += static_cast<size_t>(T * C) * sizeof(float) + (keep_all ? a.bytes() : 0);
    }
    peak = std::max(peak, held + a.bytes());
    x = std::move(next);
  }
  std::vector<float> dx(static_cast<size_t>(T * C)), dprev(static_cast<size_t>(T * C)), recomputed;
  int64_t n_targets = 0;
  size_t logit_bytes = 0;
  stats.loss += tied_head_loss(dx.data(), x.data(), T, C, head.vocab, *head.norm, head.eps, *head.embed, head.softcap,
                               seq.targets.data(), seq.weight, &n_targets, &logit_bytes, ctx);
  stats.targets += n_targets;
  stats.tokens += T;
  peak = std::max(peak, held + logit_bytes);
  for (int64_t l = n_layers - 1; l >= first_layer && n_targets > 0; --l) {
    const std::vector<float>& xin = xs[static_cast<size_t>(l)];
    Acts& a = acts[keep_all ? static_cast<size_t>(l) : 0];
    if (!keep_all) {
      recomputed.resize(static_cast<size_t>(T * C));
      forward(l, xin.data(), recomputed.data(), a);
    }
    peak = std::max(peak, held + a.bytes() + backward_bytes);
    backward(l, xin.data(), dx.data(), dprev.data(), a);
    std::swap(dx, dprev);
  }
  stats.peak_activation_bytes = std::max(stats.peak_activation_bytes, peak);
}

// Grows v to at least n floats (contents kept) and returns its data.
inline float* at_least(std::vector<float>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Sets v to n zeros and returns its data.
inline float* sized(std::vector<float>& v, int64_t n) {
  v.assign(static_cast<size_t>(n), 0.0f);
  return v.data();
}

}  // namespace optiq
