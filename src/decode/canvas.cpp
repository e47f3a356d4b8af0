#include "decode/canvas.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "decode/rng.h"

namespace optiq {

using json = nlohmann::json;

Result<CanvasSampler> parse_canvas_sampler(const std::string& name) {
  if (name == "entropy-bound") return CanvasSampler::kEntropyBound;
  if (name == "confidence-threshold") return CanvasSampler::kConfidenceThreshold;
  return Status::InvalidArgument("sampler \"" + name + "\": expected entropy-bound or confidence-threshold");
}

const char* canvas_sampler_name(CanvasSampler s) {
  return s == CanvasSampler::kEntropyBound ? "entropy-bound" : "confidence-threshold";
}

namespace {
Result<CanvasOptions> parse_generation_config(const json& g);
}  // namespace

Result<CanvasOptions> canvas_options_from_generation_config(const json& g) {
  try {
    return parse_generation_config(g);
  } catch (const json::exception& e) {
    return Status::Corruption(std::string("generation_config.json: ") + e.what());
  }
}

namespace {
Result<CanvasOptions> parse_generation_config(const json& g) {
  CanvasOptions o;
  if (!g.is_object()) return o;
  auto num = [&](const json& j, const char* key, double* out) -> Status {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return Status::Ok();
    if (!it->is_number()) return Status::Corruption(std::string("generation_config.json: ") + key + " is not a number");
    *out = it->get<double>();
    return Status::Ok();
  };
  auto integer = [&](const char* key, int64_t* out) -> Status {
    auto it = g.find(key);
    if (it == g.end() || it->is_null()) return Status::Ok();
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return Status::Corruption(std::string("generation_config.json: ") + key + " is not a positive integer");
    *out = it->get<int64_t>();
    return Status::Ok();
  };
  int64_t steps = o.max_steps, stab = o.stability_threshold;
  OPTIQ_RETURN_IF_ERROR(integer("max_denoising_steps", &steps));
  OPTIQ_RETURN_IF_ERROR(integer("stability_threshold", &stab));
  OPTIQ_RETURN_IF_ERROR(integer("max_new_tokens", &o.max_new_tokens));
  o.max_steps = static_cast<int>(steps);
  o.stability_threshold = static_cast<int>(stab);
  OPTIQ_RETURN_IF_ERROR(num(g, "t_min", &o.t_min));
  OPTIQ_RETURN_IF_ERROR(num(g, "t_max", &o.t_max));
  OPTIQ_RETURN_IF_ERROR(num(g, "confidence_threshold", &o.confidence_threshold));
  if (g.contains("sampler_config") && g["sampler_config"].is_object())
    OPTIQ_RETURN_IF_ERROR(num(g["sampler_config"], "entropy_bound", &o.entropy_bound));
  // eos_ids stay empty: canvas_generate then uses ModelInfo::eos_ids, the union of config.json's
  // and generation_config.json's ids.
  return o;
}
}  // namespace

Result<std::vector<int32_t>> expand_image_prompt(std::span<const int32_t> ids, const ModelInfo& info,
                                                 std::span<const ImageEmbedding> images, PromptEmbeds* out) {
  const int32_t img = info.image_token_id, boi = info.boi_token_id, eoi = info.eoi_token_id;
  const int64_t C = info.hidden_size;
  if (images.empty()) {
    if (out) *out = PromptEmbeds{};
    return std::vector<int32_t>(ids.begin(), ids.end());
  }
  if (img < 0 || boi < 0 || eoi < 0)
    return Status::InvalidArgument(info.model_type + ": images given but the model has no image tokens");
  const auto n_placeholders = std::count(ids.begin(), ids.end(), img);
  if (n_placeholders != static_cast<int64_t>(images.size()))
    return Status::InvalidArgument("prompt has " + std::to_string(n_placeholders) + " image placeholders but " +
                                   std::to_string(images.size()) + " images were given");
  std::vector<int32_t> res;
  PromptEmbeds pe;
  size_t next = 0;
  for (size_t t = 0; t < ids.size(); ++t) {
    if (ids[t] != img) {
      res.push_back(ids[t]);
      continue;
    }
    const ImageEmbedding& im = images[next++];
    if (static_cast<int64_t>(im.embeds.size()) != im.n_tokens * C)
      return Status::InvalidArgument("image " + std::to_string(next - 1) + ": " + std::to_string(im.embeds.size()) +
                                     " values for " + std::to_string(im.n_tokens) + " tokens of width " +
                                     std::to_string(C));
    if (res.empty() || res.back() != boi) res.push_back(boi);
    const size_t first = res.size();
    for (int64_t i = 0; i < im.n_tokens; ++i) res.push_back(img);
    pe.embeds.resize(res.size() * C, 0.f);
    std::copy(im.embeds.begin(), im.embeds.end(), pe.embeds.begin() + static_cast<int64_t>(first) * C);
    if (t + 1 >= ids.size() || ids[t + 1] != eoi) res.push_back(eoi);
  }
  pe.embeds.resize(res.size() * C, 0.f);
  pe.override_rows.assign(res.size(), false);
  for (size_t t = 0; t < res.size(); ++t) pe.override_rows[t] = res[t] == img;
  if (out) *out = std::move(pe);
  return res;
}

namespace {

// Statistics of softmax(z) for one canvas position, in float64 (spec: entropies and CDFs in f64).
struct RowStats {
  int32_t argmax = 0;   // first index of the maximum
  double max_z = 0;
  double sum = 0;       // Σ exp(z − max)
  double entropy = 0;   // natural log
  double p_max = 0;     // probability of the argmax
};

RowStats row_stats(const float* z, int64_t V) {
  RowStats r;
  float mx = z[0];
  for (int64_t v = 1; v < V; ++v)
    if (z[v] > mx) {
      mx = z[v];
      r.argmax = static_cast<int32_t>(v);
    }
  r.max_z = mx;
  double s = 0, sz = 0;
  for (int64_t v = 0; v < V; ++v) {
    const double d = static_cast<double>(z[v]) - r.max_z;
    const double e = std::exp(d);
    s += e;
    sz += e * d;
  }
  r.sum = s;
  r.entropy = std::log(s) - sz / s;  // H = −Σ p log p with log p = d − log s
  r.p_max = 1.0 / s;
  return r;
}

// Inverse-CDF draw: the first index whose cumulative probability exceeds u (the last if none).
int32_t sample_row(const float* z, int64_t V, const RowStats& st, double u) {
  double cum = 0;
  for (int64_t v = 0; v < V; ++v) {
    cum += std::exp(static_cast<double>(z[v]) - st.max_z) / st.sum;
    if (cum > u) return static_cast<int32_t>(v);
  }
  return static_cast<int32_t>(V - 1);
}

class CanvasRunner {
 public:
  CanvasRunner(const Model& m, ThreadPool& pool, const CanvasOptions& o, std::span<const int32_t> eos)
      : m_(m), pool_(pool), o_(o), eos_(eos.begin(), eos.end()), L_(m.info().canvas_length), V_(m.info().vocab_size) {
    logits_.resize(static_cast<size_t>(L_ * V_));
    sc_.resize(static_cast<size_t>(L_ * V_));
    stats_.resize(static_cast<size_t>(L_));
  }

  // One canvas at positions [pos0, pos0 + L) against `cache` (left unchanged); nullopt when
  // `cancelled` asked to stop before a step.
  Result<std::optional<CanvasTrace>> run_canvas(Cache& cache, int64_t pos0, SplitMix64& rng, int64_t* forwards,
                                                const CanvasCancel& cancelled) {
    CanvasTrace tr;
    std::vector<int32_t> x(static_cast<size_t>(L_)), prev(static_cast<size_t>(L_), -1), draft(static_cast<size_t>(L_), 0);
    std::vector<int32_t> a(static_cast<size_t>(L_)), y(static_cast<size_t>(L_));
    std::vector<bool> revealed(static_cast<size_t>(L_), false), accept(static_cast<size_t>(L_));
    std::vector<double> u(static_cast<size_t>(L_));
    for (int64_t i = 0; i < L_; ++i) x[i] = rng.token(V_);
    bool have_sc = false;
    int stable_run = 0;
    for (int step = 0; step < o_.max_steps; ++step) {
      if (cancelled && cancelled()) return std::optional<CanvasTrace>();
      ForwardBatch b;
      b.tokens = x;
      b.pos0 = pos0;
      b.mask = MaskMode::kFull;
      b.write_cache = false;
      if (have_sc) b.self_condition = sc_;
      OPTIQ_RETURN_IF_ERROR(m_.forward(b, cache, logits_.data(), pool_));
      ++*forwards;
      // Temperature over the remaining steps, max_steps down to 1 (no rescale on early stop).
      const int remaining = o_.max_steps - step;
      const double temp = o_.t_min + (o_.t_max - o_.t_min) * remaining / o_.max_steps;
      pool_.parallel_for(L_, [&](int64_t b0, int64_t e0, int) {
        for (int64_t i = b0; i < e0; ++i) {
          float* z = sc_.data() + i * V_;
          const float* raw = logits_.data() + i * V_;
          for (int64_t v = 0; v < V_; ++v) z[v] = static_cast<float>(raw[v] / temp);
          stats_[i] = row_stats(z, V_);
          a[i] = stats_[i].argmax;
        }
      });
      CanvasStep st;
      double h_sum = 0;
      for (int64_t i = 0; i < L_; ++i) h_sum += stats_[i].entropy;
      st.mean_entropy = h_sum / static_cast<double>(L_);
      bool all_revealed = false;
      if (o_.sampler == CanvasSampler::kEntropyBound) {
        for (int64_t i = 0; i < L_; ++i) u[i] = rng.uniform();  // draws in position order
        pool_.parallel_for(L_, [&](int64_t b0, int64_t e0, int) {
          for (int64_t i = b0; i < e0; ++i) y[i] = sample_row(sc_.data() + i * V_, V_, stats_[i], u[i]);
        });
        std::vector<int32_t> order(static_cast<size_t>(L_));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int32_t p, int32_t q) {
          return stats_[p].entropy < stats_[q].entropy || (stats_[p].entropy == stats_[q].entropy && p < q);
        });
        std::fill(accept.begin(), accept.end(), false);
        double before = 0;  // sum of the entropies ranked before this position
        for (int32_t p : order) {
          if (before > o_.entropy_bound) break;
          accept[p] = true;
          before += stats_[p].entropy;
        }
        for (int64_t i = 0; i < L_; ++i) {
          if (accept[i]) st.accepted.push_back(static_cast<int32_t>(i));
          x[i] = accept[i] ? y[i] : rng.token(V_);
        }
      } else {
        int64_t best = -1;
        for (int64_t i = 0; i < L_; ++i) {
          if (revealed[i]) continue;
          if (stats_[i].p_max >= o_.threshold) st.accepted.push_back(static_cast<int32_t>(i));
          if (best < 0 || stats_[i].p_max > stats_[best].p_max) best = i;
        }
        if (st.accepted.empty() && best >= 0) st.accepted.push_back(static_cast<int32_t>(best));
        for (int32_t i : st.accepted) {
          revealed[i] = true;
          draft[i] = a[i];
        }
        all_revealed = std::all_of(revealed.begin(), revealed.end(), [](bool r) { return r; });
        for (int64_t i = 0; i < L_; ++i) x[i] = revealed[i] ? draft[i] : rng.token(V_);
      }
      st.argmax_changed = a != prev;
      stable_run = st.argmax_changed ? 0 : stable_run + 1;
      tr.steps.push_back(std::move(st));
      prev = a;
      have_sc = true;  // sc_ now holds this step's z: the next step's self-conditioning input
      const bool stop = (stable_run >= o_.stability_threshold && tr.steps.back().mean_entropy < o_.confidence_threshold) ||
                        all_revealed;
      if (stop) break;
    }
    tr.argmax = prev;
    for (int64_t i = 0; i < L_; ++i)
      if (std::find(eos_.begin(), eos_.end(), prev[i]) != eos_.end()) {
        tr.eos_at = static_cast<int>(i);
        break;
      }
    return std::optional<CanvasTrace>(std::move(tr));
  }

  int64_t canvas_length() const { return L_; }

 private:
  const Model& m_;
  ThreadPool& pool_;
  const CanvasOptions& o_;
  std::vector<int32_t> eos_;
  int64_t L_, V_;
  std::vector<float> logits_, sc_;  // [L, V] raw logits; [L, V] temperature-scaled logits z
  std::vector<RowStats> stats_;
};

}  // namespace

Result<CanvasResult> canvas_generate(const Model& model, ThreadPool& pool, std::span<const int32_t> prompt,
                                     const CanvasOptions& opts, const PromptEmbeds* embeds,
                                     const CanvasCallback& on_canvas, const CanvasCancel& cancelled) {
  const ModelInfo& info = model.info();
  const int64_t L = info.canvas_length, P = static_cast<int64_t>(prompt.size());
  if (L <= 0) return Status::InvalidArgument(info.model_type + ": not a canvas-diffusion model (canvas_length 0)");
  if (P == 0) return Status::InvalidArgument("canvas_generate: empty prompt");
  if (opts.max_steps <= 0) return Status::InvalidArgument("canvas_generate: steps must be positive");
  if (opts.max_new_tokens <= 0) return Status::InvalidArgument("canvas_generate: max_new_tokens must be positive");
  if (opts.max_retries < 0) return Status::InvalidArgument("canvas_generate: max_retries must be >= 0");
  if (!(opts.threshold > 0 && opts.threshold <= 1))
    return Status::InvalidArgument("canvas_generate: threshold " + std::to_string(opts.threshold) + " outside (0, 1]");
  if (!(opts.t_min > 0 && opts.t_max > 0))
    return Status::InvalidArgument("canvas_generate: temperatures must be positive");
  if (embeds && !embeds->override_rows.empty() && embeds->override_rows.size() != prompt.size())
    return Status::InvalidArgument("canvas_generate: prompt embeds cover " + std::to_string(embeds->override_rows.size()) +
                                   " rows, prompt has " + std::to_string(P));
  const int64_t n_canvas = (opts.max_new_tokens + L - 1) / L;
  const int64_t need = P + n_canvas * L;
  if (info.max_position > 0 && need > info.max_position)
    return Status::InvalidArgument("canvas_generate: prompt " + std::to_string(P) + " + " + std::to_string(n_canvas) +
                                   " canvases of " + std::to_string(L) + " exceed the context of " +
                                   std::to_string(info.max_position));
  const std::vector<int32_t>& eos = opts.eos_ids.empty() ? info.eos_ids : opts.eos_ids;

  auto cache = model.make_cache(need);
  CanvasResult res;
  res.prompt_tokens = P;
  {
    std::vector<float> last(static_cast<size_t>(info.vocab_size));
    ForwardBatch b;
    b.tokens = prompt;
    b.pos0 = 0;
    b.mask = MaskMode::kCausal;
    b.last_logits_only = true;
    if (embeds && !embeds->override_rows.empty()) {
      b.input_embeds = embeds->embeds;
      b.embed_override = embeds->override_rows;
    }
    OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, last.data(), pool));
    ++res.encoder_forwards;
  }
  const auto after_prompt = cache->snapshot();
  CanvasRunner runner(model, pool, opts, eos);
  std::vector<float> commit_logits(static_cast<size_t>(info.vocab_size));
  bool caller_stopped = false;  // on_canvas or cancelled ended the generation: no retry
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) cache->restore(*after_prompt);
    const uint64_t seed = opts.seed + static_cast<uint64_t>(attempt);
    SplitMix64 rng(seed);
    res.canvases.clear();
    res.tokens.clear();
    res.seed_used = seed;
    int64_t pos = P;
    bool stop = false;
    while (!stop && static_cast<int64_t>(res.tokens.size()) < opts.max_new_tokens) {
      OPTIQ_ASSIGN_OR_RETURN(std::optional<CanvasTrace> run,
                             runner.run_canvas(*cache, pos, rng, &res.decoder_forwards, cancelled));
      if (!run) {
        caller_stopped = true;
        break;
      }
      CanvasTrace& tr = *run;
      const int64_t keep = tr.eos_at >= 0 ? tr.eos_at : L;
      res.tokens.insert(res.tokens.end(), tr.argmax.begin(), tr.argmax.begin() + keep);
      stop = tr.eos_at >= 0;
      res.canvases.push_back(std::move(tr));
      if (on_canvas && !on_canvas(res.canvases.back())) stop = caller_stopped = true;
      if (stop || static_cast<int64_t>(res.tokens.size()) >= opts.max_new_tokens) break;
      // Commit the whole (untrimmed) argmax canvas through the encoder at its positions.
      ForwardBatch b;
      b.tokens = res.canvases.back().argmax;
      b.pos0 = pos;
      b.mask = MaskMode::kCausal;
      b.last_logits_only = true;
      OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, commit_logits.data(), pool));
      ++res.encoder_forwards;
      pos += L;
    }
    if (static_cast<int64_t>(res.tokens.size()) > opts.max_new_tokens) res.tokens.resize(opts.max_new_tokens);
    if (!res.tokens.empty() || attempt >= opts.max_retries || caller_stopped) break;
    ++res.retries;
  }
  return res;
}

json canvas_result_to_json(const CanvasResult& r) {
  json j;
  j["tokens"] = r.tokens;
  json cs = json::array();
  for (auto& c : r.canvases) {
    json steps = json::array();
    for (auto& s : c.steps) steps.push_back({{"accepted", s.accepted}, {"argmax_changed", s.argmax_changed}});
    cs.push_back({{"steps", steps}, {"argmax", c.argmax}, {"eos_at", c.eos_at >= 0 ? json(c.eos_at) : json(nullptr)}});
  }
  j["canvases"] = cs;
  j["retries"] = r.retries;
  j["seed"] = r.seed_used;
  j["decoder_forwards"] = r.decoder_forwards;
  j["encoder_forwards"] = r.encoder_forwards;
  j["tokens_per_forward"] = r.tokens_per_forward();
  return j;
}

}  // namespace optiq
