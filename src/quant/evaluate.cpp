#include "quant/evaluate.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "tokenizer/tokenizer.h"
#include "quant/progress.h"

namespace optiq {

Result<std::vector<int32_t>> read_heldout_tokens(const std::string& text_path, int64_t tail_bytes,
                                                 const std::string& model_dir) {
  std::ifstream in(text_path, std::ios::binary);
  if (!in) return Status::NotFound(text_path + ": cannot open held-out text");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  if (tail_bytes > 0 && static_cast<int64_t>(text.size()) > tail_bytes) text = text.substr(text.size() - tail_bytes);
  OPTIQ_ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tok, Tokenizer::from_dir(model_dir));
  return tok->encode(text, /*add_special_tokens=*/false);
}

std::vector<std::vector<int32_t>> eval_windows(const std::vector<int32_t>& tokens, int n, int seq_len) {
  std::vector<std::vector<int32_t>> out;
  if (seq_len <= 0 || n <= 0 || static_cast<int64_t>(tokens.size()) < seq_len) return out;
  const int64_t n_full = static_cast<int64_t>(tokens.size()) / seq_len;
  const int64_t take = std::min<int64_t>(n, n_full);
  for (int64_t i = 0; i < take; ++i) {
    const int64_t w = take == 1 ? 0 : i * (n_full - 1) / (take - 1);
    out.emplace_back(tokens.begin() + w * seq_len, tokens.begin() + (w + 1) * seq_len);
  }
  return out;
}

KlSummary summarize_kl(const KlValues& v) {
  KlSummary s;
  s.causal_mean = KlValues::mean(v.causal);
  s.causal_p95 = KlValues::quantile(v.causal, 0.95);
  s.block_mean = KlValues::mean(v.block);
  s.block_p95 = KlValues::quantile(v.block, 0.95);
  s.n_causal = v.causal.size();
  s.n_block = v.block.size();
  return s;
}

Result<PerplexityResult> evaluate_perplexity(const Model& model, const std::vector<int32_t>& tokens, int seq_len,
                                             int max_windows, ThreadPool& pool, std::FILE* progress) {
  if (seq_len < 2) return Status::InvalidArgument("perplexity: seq_len must be at least 2");
  int64_t n_windows = static_cast<int64_t>(tokens.size()) / seq_len;
  if (max_windows > 0) n_windows = std::min<int64_t>(n_windows, max_windows);
  if (n_windows == 0)
    return Status::InvalidArgument("perplexity: " + std::to_string(tokens.size()) + " tokens, fewer than one window of " +
                                   std::to_string(seq_len));
  const int64_t V = model.info().vocab_size;
  std::vector<float> logits(static_cast<size_t>(seq_len * V));
  double nll = 0;
  int64_t count = 0;
  ProgressBar bar(n_windows, "perplexity", progress);
  for (int64_t w = 0; w < n_windows; ++w) {
    const int32_t* t = tokens.data() + w * seq_len;
    auto cache = model.make_cache(seq_len);
    ForwardBatch b;
    b.tokens = std::span<const int32_t>(t, static_cast<size_t>(seq_len));
    OPTIQ_RETURN_IF_ERROR(model.forward(b, *cache, logits.data(), pool));
    log_softmax_rows(logits.data(), seq_len - 1, V);
    for (int64_t i = 0; i + 1 < seq_len; ++i) {
      nll -= logits[i * V + t[i + 1]];
      ++count;
    }
    bar.update(w + 1, "window " + std::to_string(w + 1));
  }
  PerplexityResult r;
  r.mean_nll = nll / static_cast<double>(count);
  r.perplexity = std::exp(r.mean_nll);
  r.n_tokens = count;
  r.n_windows = static_cast<int>(n_windows);
  return r;
}

}  // namespace optiq
