// `optiq eval`: KL against a reference model and perplexity on held-out text.
//
// Held-out text: the last `tail_bytes` bytes of a text file (the CLI's default is the bundled
// data/heldout/brown-heldout.txt: the last 200,000 bytes of the Brown corpus, the split the bundled
// models were not trained on), tokenized with the model's tokenizer (no special tokens added).
// KL uses the probes of quant/kl.h on evenly spaced windows of that text: causal over every
// position, and block-diffusion (masked positions of the last block at mask fractions
// 1/0.75/0.5/0.25) when the model has that mode; reported as mean and p95 over positions.
// Perplexity: exp(mean next-token NLL) over non-overlapping causal windows of seq_len tokens
// (each window predicts its tokens 1..L−1).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "models/model.h"
#include "quant/kl.h"

namespace optiq {

Result<std::vector<int32_t>> read_heldout_tokens(const std::string& text_path, int64_t tail_bytes,
                                                 const std::string& model_dir);

// `n` windows of seq_len tokens spread evenly over `tokens` (fewer if the text is short).
std::vector<std::vector<int32_t>> eval_windows(const std::vector<int32_t>& tokens, int n, int seq_len);

struct KlSummary {
  double causal_mean = 0, causal_p95 = 0, block_mean = 0, block_p95 = 0;
  size_t n_causal = 0, n_block = 0;
};
KlSummary summarize_kl(const KlValues& v);

struct PerplexityResult {
  double mean_nll = 0;  // nats per token
  double perplexity = 0;
  int64_t n_tokens = 0;
  int n_windows = 0;
};

// max_windows 0 = every full window. `progress` may be nullptr.
Result<PerplexityResult> evaluate_perplexity(const Model& model, const std::vector<int32_t>& tokens, int seq_len,
                                             int max_windows, ThreadPool& pool, std::FILE* progress = nullptr);

}  // namespace optiq
