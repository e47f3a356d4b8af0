#include "decode/sampler.h"

#include <algorithm>
#include <cmath>

namespace optiq {

Status SamplingParams::validate() const {
  if (!(temperature >= 0.f) || !std::isfinite(temperature))
    return Status::InvalidArgument("temperature must be >= 0, got " + std::to_string(temperature));
  if (top_k < 0) return Status::InvalidArgument("top_k must be >= 0, got " + std::to_string(top_k));
  if (!(top_p > 0.f && top_p <= 1.f)) return Status::InvalidArgument("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (!(min_p >= 0.f && min_p <= 1.f)) return Status::InvalidArgument("min_p must be in [0, 1], got " + std::to_string(min_p));
  if (!(repetition_penalty > 0.f) || !std::isfinite(repetition_penalty))
    return Status::InvalidArgument("repetition_penalty must be > 0, got " + std::to_string(repetition_penalty));
  return Status::Ok();
}

static inline void penalise(float& z, float p) { z = z > 0.f ? z / p : z * p; }

void apply_repetition_penalty(float* logits, const std::vector<int32_t>& seen, float penalty) {
  if (penalty == 1.f) return;
  for (int32_t id : seen) penalise(logits[id], penalty);
}

void apply_repetition_penalty(float* logits, const SeenTokens& seen, std::span<const int32_t> extra, float penalty) {
  if (penalty == 1.f) return;
  apply_repetition_penalty(logits, seen.ids(), penalty);
  // Extra ids count once each, and not if already seen.
  std::vector<int32_t> done;
  for (int32_t id : extra) {
    if (std::find(seen.ids().begin(), seen.ids().end(), id) != seen.ids().end()) continue;
    if (std::find(done.begin(), done.end(), id) != done.end()) continue;
    done.push_back(id);
    penalise(logits[id], penalty);
  }
}

int32_t argmax(const float* z, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (z[i] > z[best]) best = i;
  return static_cast<int32_t>(best);
}

int32_t Sampler::sample(float* z, int64_t V) {
  if (params_.greedy()) return argmax(z, V);
  const float inv_t = 1.f / params_.temperature;
  float mx = -INFINITY;
  for (int64_t i = 0; i < V; ++i) mx = std::max(mx, z[i] * inv_t);
  cand_.clear();
  double sum = 0;
  for (int64_t i = 0; i < V; ++i) {
    const float p = std::exp(z[i] * inv_t - mx);
    if (p > 0.f) cand_.push_back({p, static_cast<int32_t>(i)});
    sum += p;
  }
  auto by_prob = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    std::partial_sort(cand_.begin(), cand_.begin() + params_.top_k, cand_.end(), by_prob);
    keep = static_cast<size_t>(params_.top_k);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_prob);
  }
  cand_.resize(keep);
  // Renormalise over the survivors before top-p, as HF applies warpers to the filtered logits.
  sum = 0;
  for (auto& c : cand_) sum += c.first;
  if (params_.top_p < 1.f) {
    double cum = 0;
    size_t n = 0;
    for (; n < cand_.size(); ++n) {
      cum += cand_[n].first / sum;
      if (cum >= params_.top_p) {
        ++n;
        break;
      }
    }
    cand_.resize(std::max<size_t>(1, std::min(n, cand_.size())));
  }
  if (params_.min_p > 0.f) {
    const float thresh = params_.min_p * cand_[0].first;
    size_t n = 1;
    while (n < cand_.size() && cand_[n].first >= thresh) ++n;
    cand_.resize(n);
  }
  sum = 0;
  for (auto& c : cand_) sum += c.first;
  const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_) * sum;
  double acc = 0;
  for (auto& c : cand_) {
    acc += c.first;
    if (u < acc) return c.second;
  }
  return cand_.back().second;
}

}  // namespace optiq
