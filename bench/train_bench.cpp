// LoRA training step timing: rank-r LoRA on every linear of a model, `batch` random sequences of
// `seq` tokens with next-token targets on every row (the `ar` objective), one
// Trainable::accumulate_lora_gradients call per step (forward, loss, backward). Prints one JSON line
// per step and a summary: tokens/s (median of steps), peak RSS (VmHWM) and the training code's own
// peak activation bytes.
//
//   ./build/train_bench --model DIR [--seq 512] [--batch 4] [--rank 8] [--steps 3] [--threads 2]
//                       [--no-grad-checkpoint]
// A random checkpoint with dhara-250m's shapes: optiq init-random --config bench/configs/dhara-250m.json -o DIR
// (and optiq convert DIR -o Q --method static --target-bpw 4 --candidate-bits 4 for a 4-bit base).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "models/model.h"

namespace {

long vm_hwm_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace optiq;
  std::string model_dir;
  int64_t seq = 512, batch = 4, rank = 8, steps = 3;
  int threads = 2;
  bool checkpoint = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--model") model_dir = next();
    else if (a == "--seq") seq = std::stol(next());
    else if (a == "--batch") batch = std::stol(next());
    else if (a == "--rank") rank = std::stol(next());
    else if (a == "--steps") steps = std::stol(next());
    else if (a == "--threads") threads = std::stoi(next());
    else if (a == "--no-grad-checkpoint") checkpoint = false;
    else {
      std::fprintf(stderr, "unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  if (model_dir.empty()) {
    std::fprintf(stderr, "usage: train_bench --model DIR [--seq N] [--batch N] [--rank N] [--steps N] [--threads N]\n");
    return 2;
  }
  auto model = load_model(model_dir, LoadOptions{.tensor_overrides = {}, .repack = false});
  if (!model.ok()) {
    std::fprintf(stderr, "%s\n", model.status().ToString().c_str());
    return 1;
  }
  const Trainable* tr = (*model)->trainable();
  if (!tr) {
    std::fprintf(stderr, "%s cannot be trained\n", (*model)->info().model_type.c_str());
    return 1;
  }
  std::mt19937 rng(1);
  LoraAdapter params;
  params.scale = 2.0f;
  for (const auto& [name, io] : tr->lora_targets(-1)) {
    LoraModule m;
    m.in = io.first;
    m.out = io.second;
    m.rank = rank;
    std::uniform_real_distribution<float> ua(-1.0f / std::sqrt(static_cast<float>(m.in)),
                                             1.0f / std::sqrt(static_cast<float>(m.in)));
    m.a.resize(static_cast<size_t>(m.in * rank));
    for (float& v : m.a) v = ua(rng);
    m.b.assign(static_cast<size_t>(rank * m.out), 0.0f);
    params.modules[name] = std::move(m);
  }
  const int64_t V = (*model)->info().vocab_size;
  std::vector<TrainSequence> seqs(static_cast<size_t>(batch));
  for (auto& s : seqs) {
    for (int64_t t = 0; t < seq; ++t) s.tokens.push_back(static_cast<int32_t>(rng() % static_cast<uint32_t>(V - 1)));
    for (int64_t t = 0; t < seq; ++t)
      s.targets.push_back(t + 1 < seq ? s.tokens[static_cast<size_t>(t + 1)] : -1);
    s.weight = 1.0f / static_cast<float>(batch * (seq - 1));
  }
  ThreadPool pool(threads);
  TrainOptions opts;
  opts.grad_checkpoint = checkpoint;
  LoraAdapter grads = params.zeros_like();
  std::vector<double> tps;
  size_t peak_act = 0;
  for (int64_t s = 0; s < steps; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    auto st = tr->accumulate_lora_gradients(seqs, params, grads, opts, pool);
    const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.status().ToString().c_str());
      return 1;
    }
    peak_act = std::max(peak_act, st->peak_activation_bytes);
    tps.push_back(static_cast<double>(st->tokens) / sec);
    std::printf("{\"step\": %lld, \"seconds\": %.3f, \"tokens_per_s\": %.1f, \"loss\": %.5f}\n",
                static_cast<long long>(s), sec, tps.back(), st->loss);
    std::fflush(stdout);
  }
  std::sort(tps.begin(), tps.end());
  std::printf("{\"model\": \"%s\", \"seq\": %lld, \"batch\": %lld, \"rank\": %lld, \"threads\": %d, "
              "\"grad_checkpoint\": %s, \"tokens_per_s_median\": %.1f, \"tokens_per_s_min\": %.1f, "
              "\"tokens_per_s_max\": %.1f, \"peak_rss_mb\": %.1f, \"peak_activation_mb\": %.1f}\n",
              model_dir.c_str(), static_cast<long long>(seq), static_cast<long long>(batch),
              static_cast<long long>(rank), threads, checkpoint ? "true" : "false", tps[tps.size() / 2], tps.front(),
              tps.back(), static_cast<double>(vm_hwm_kb()) / 1024.0, static_cast<double>(peak_act) / 1048576.0);
  return 0;
}
