#include "quant/kl.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "quant/calibration.h"

namespace optiq {

bool probes_block_mode(const ModelInfo& info, const ProbeOptions& opts, int64_t chunk_len) {
  return opts.block && !opts.mask_fractions.empty() && info.supports_block && info.mask_token_id >= 0 &&
         info.block_len > 0 && chunk_len >= info.block_len;
}

Status run_probes(const Model& model, const std::vector<int32_t>& chunk, size_t chunk_index,
                  const ProbeOptions& opts, ThreadPool& pool,
                  const std::function<void(int, int64_t, const float*)>& fn) {
  const ModelInfo& info = model.info();
  const int64_t L = static_cast<int64_t>(chunk.size()), V = info.vocab_size;
  if (L == 0) return Status::InvalidArgument("run_probes: empty chunk");
  std::vector<float> logits(static_cast<size_t>(L * V));
  {
    auto cache = model.make_cache(L);
    ForwardBatch b;
    b.tokens = chunk;
    b.mask = MaskMode::kCausal;
    OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, logits.data(), pool));
    fn(0, L, logits.data());
  }
  if (!probes_block_mode(info, opts, L)) return Status::Ok();
  const int64_t B = info.block_len, prefix = L - B;
  auto cache = model.make_cache(L);
  if (prefix > 0) {
    ForwardBatch b;
    b.tokens = std::span<const int32_t>(chunk.data(), static_cast<size_t>(prefix));
    b.mask = MaskMode::kBlock;
    b.block_len = static_cast<int>(B);
    b.last_logits_only = true;
    OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, logits.data(), pool));
  }
  std::vector<int64_t> order(static_cast<size_t>(B));
  std::iota(order.begin(), order.end(), 0);
  seeded_shuffle(order, opts.seed * 1000003ull + chunk_index);
  std::vector<int32_t> block(static_cast<size_t>(B));
  std::vector<float> rows;
  for (size_t f = 0; f < opts.mask_fractions.size(); ++f) {
    const int64_t n_mask =
        std::clamp<int64_t>(std::llround(opts.mask_fractions[f] * static_cast<double>(B)), 1, B);
    std::vector<bool> masked(static_cast<size_t>(B), false);
    for (int64_t i = 0; i < n_mask; ++i) masked[order[i]] = true;
    for (int64_t j = 0; j < B; ++j) block[j] = masked[j] ? info.mask_token_id : chunk[prefix + j];
    ForwardBatch b;
    b.tokens = block;
    b.pos0 = prefix;
    b.mask = MaskMode::kBlock;
    b.block_len = static_cast<int>(B);
    b.write_cache = false;
    OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, logits.data(), pool));
    rows.clear();
    for (int64_t j = 0; j < B; ++j)
      if (masked[j]) rows.insert(rows.end(), logits.begin() + j * V, logits.begin() + (j + 1) * V);
    fn(static_cast<int>(f + 1), n_mask, rows.data());
  }
  return Status::Ok();
}

void log_softmax_rows(float* x, int64_t rows, int64_t V) {
  for (int64_t r = 0; r < rows; ++r) {
    float* p = x + r * V;
    float mx = -INFINITY;
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, p[v]);
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(static_cast<double>(p[v] - mx));
    const float lse = mx + static_cast<float>(std::log(s));
    for (int64_t v = 0; v < V; ++v) p[v] -= lse;
  }
}

double KlValues::mean(const std::vector<float>& v) {
  if (v.empty()) return 0;
  double s = 0;
  for (float x : v) s += x;
  return s / static_cast<double>(v.size());
}

double KlValues::quantile(std::vector<float> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double KlValues::score() const {
  if (block.empty()) return mean(causal);
  return 0.5 * (mean(causal) + mean(block));
}

Result<ReferenceLogits> ReferenceLogits::compute(const Model& model, const std::vector<std::vector<int32_t>>& chunks,
                                                 const ProbeOptions& opts, ThreadPool& pool) {
  ReferenceLogits r;
  r.chunks_ = chunks;
  r.opts_ = opts;
  r.V_ = model.info().vocab_size;
  r.logp_.resize(chunks.size());
  for (size_t c = 0; c < chunks.size(); ++c) {
    OPTIQ_RETURN_IF_ERROR(run_probes(model, chunks[c], c, opts, pool, [&](int mode, int64_t rows, const float* l) {
      auto& dst = r.logp_[c];
      if (dst.size() <= static_cast<size_t>(mode)) dst.resize(static_cast<size_t>(mode) + 1);
      dst[mode].assign(l, l + rows * r.V_);
      log_softmax_rows(dst[mode].data(), rows, r.V_);
      if (mode > 0) r.has_block_ = true;
    }));
  }
  return r;
}

Result<KlValues> ReferenceLogits::compare(const Model& model, ThreadPool& pool) const {
  if (model.info().vocab_size != V_)
    return Status::InvalidArgument("KL: model vocabulary " + std::to_string(model.info().vocab_size) +
                                   " differs from the reference's " + std::to_string(V_));
  KlValues out;
  std::vector<float> cur;
  for (size_t c = 0; c < chunks_.size(); ++c) {
    Status inner = Status::Ok();
    OPTIQ_RETURN_IF_ERROR(run_probes(model, chunks_[c], c, opts_, pool, [&](int mode, int64_t rows, const float* l) {
      const auto& ref = logp_[c];
      if (static_cast<size_t>(mode) >= ref.size() || static_cast<int64_t>(ref[mode].size()) != rows * V_) {
        inner = Status::InvalidArgument("KL: the model's probe rows differ from the reference's (block mode support?)");
        return;
      }
      cur.assign(l, l + rows * V_);
      log_softmax_rows(cur.data(), rows, V_);
      for (int64_t r = 0; r < rows; ++r) {
        const float* pr = ref[mode].data() + r * V_;
        const float* pc = cur.data() + r * V_;
        double kl = 0;
        for (int64_t v = 0; v < V_; ++v) kl += std::exp(static_cast<double>(pr[v])) * (pr[v] - pc[v]);
        (mode == 0 ? out.causal : out.block).push_back(static_cast<float>(std::max(kl, 0.0)));
      }
    }));
    OPTIQ_RETURN_IF_ERROR(inner);
  }
  return out;
}

}  // namespace optiq
