// A scripted stand-in for optiq::Model (src/models/model.h) with no weights, for decoder tests.
//
// The cache keeps the token history it was written with, so snapshot / restore / truncate are real,
// and every forward is logged with the cache's history at that moment. Logits come from a script:
//   - a row script sees, for one query row, the tokens its mask makes visible (cache history and
//     chunk, in position order), the row's own position and the mask; it fills that row's [V] logits;
//   - a chunk script sees the whole call and fills [T, V] (canvas decoders, whose logits depend on
//     the step rather than on one row).
// The fake enforces the interface's contracts as strictly as the strictest real model: ids in range,
// pos0 == cache length, capacity, and truncation only back into the last written chunk (dhara's rule
// for its Canon conv state), leaving the cache unchanged on error.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "models/model.h"

namespace optiq::test {

class FakeCache final : public Cache {
 public:
  explicit FakeCache(int64_t capacity) : capacity_(capacity) {}
  int64_t length() const override { return static_cast<int64_t>(history_.size()); }
  int64_t capacity() const override { return capacity_; }
  struct Saved final : Snapshot {
    std::vector<int32_t> history;
    int64_t last_chunk_begin;
  };
  std::unique_ptr<Snapshot> snapshot() const override {
    auto s = std::make_unique<Saved>();
    s->history = history_;
    s->last_chunk_begin = last_chunk_begin_;
    return s;
  }
  void restore(const Snapshot& s) override {
    const auto& saved = dynamic_cast<const Saved&>(s);
    history_ = saved.history;
    last_chunk_begin_ = saved.last_chunk_begin;
  }
  Status truncate(int64_t n) override {
    if (n == length()) return Status::Ok();
    if (n < last_chunk_begin_ || n > length())
      return Status::InvalidArgument("fake truncate: " + std::to_string(n) + " outside the last chunk [" +
                                     std::to_string(last_chunk_begin_) + ", " + std::to_string(length()) + "]");
    history_.resize(static_cast<size_t>(n));
    return Status::Ok();
  }
  // Tokens at positions [0, length()): what a real cache holds keys and values for.
  const std::vector<int32_t>& history() const { return history_; }
  void append(std::span<const int32_t> toks) {
    last_chunk_begin_ = length();
    history_.insert(history_.end(), toks.begin(), toks.end());
  }

 private:
  int64_t capacity_;
  std::vector<int32_t> history_;
  int64_t last_chunk_begin_ = 0;
};

// One logged forward.
struct FakeCall {
  std::vector<int32_t> tokens;
  int64_t pos0 = 0;
  MaskMode mask = MaskMode::kCausal;
  int block_len = 0;
  bool write_cache = true;
  bool last_logits_only = false;
  bool row_invariant = false;
  std::vector<float> self_condition;
  std::vector<int32_t> cache_before;  // the cache's token history when the call arrived
};

// What a row script sees for one query row.
struct FakeRow {
  std::vector<int32_t> visible;  // tokens the row's mask lets it see, in position order (itself included)
  int64_t pos = 0;               // absolute position of the row
  int32_t token = 0;             // the row's input token
  MaskMode mask = MaskMode::kCausal;
  int64_t call = 0;              // index of the forward in the log
};

// Fills `row` [V] with zeros except `tok` at `margin`: argmax `tok`, probability
// e^margin / (e^margin + V − 1).
inline void peak(std::span<float> row, int32_t tok, float margin) {
  std::fill(row.begin(), row.end(), 0.f);
  row[static_cast<size_t>(tok)] = margin;
}

class FakeModel final : public Model {
 public:
  using RowScript = std::function<void(const FakeRow&, std::span<float> logits)>;
  using ChunkScript = std::function<void(const FakeCall&, float* logits)>;  // [T, V] (all rows)

  FakeModel(ModelInfo info, RowScript script) : info_(std::move(info)), rows_(std::move(script)) { defaults(); }
  FakeModel(ModelInfo info, ChunkScript script) : info_(std::move(info)), chunk_(std::move(script)) { defaults(); }

  const ModelInfo& info() const override { return info_; }
  std::unique_ptr<Cache> make_cache(int64_t max_tokens) const override {
    return std::make_unique<FakeCache>(max_tokens);
  }

  Status forward(const ForwardBatch& b, Cache& c, float* logits, ThreadPool&) const override {
    auto* cache = dynamic_cast<FakeCache*>(&c);
    if (!cache) return Status::InvalidArgument("fake forward: cache was not made by a FakeModel");
    FakeCall call{{b.tokens.begin(), b.tokens.end()}, b.pos0, b.mask, b.block_len, b.write_cache,
                  b.last_logits_only, b.row_invariant, {b.self_condition.begin(), b.self_condition.end()}, cache->history()};
    calls.push_back(call);
    const int64_t T = static_cast<int64_t>(b.tokens.size()), V = info_.vocab_size;
    if (T == 0) return Status::InvalidArgument("fake forward: empty chunk");
    if (b.pos0 != cache->length())
      return Status::InvalidArgument("fake forward: pos0 " + std::to_string(b.pos0) + " != cache length " +
                                     std::to_string(cache->length()));
    if (cache->length() + T > cache->capacity())
      return Status::InvalidArgument("fake forward: capacity " + std::to_string(cache->capacity()) + " exceeded");
    for (int32_t t : b.tokens)
      if (t < 0 || t >= V) return Status::InvalidArgument("fake forward: token id " + std::to_string(t));
    std::vector<float> all(static_cast<size_t>(T * V));
    if (chunk_) {
      chunk_(call, all.data());
    } else {
      std::vector<int32_t> seq = call.cache_before;
      seq.insert(seq.end(), call.tokens.begin(), call.tokens.end());
      for (int64_t t = 0; t < T; ++t) {
        FakeRow row;
        row.pos = b.pos0 + t;
        row.token = b.tokens[t];
        row.mask = b.mask;
        row.call = static_cast<int64_t>(calls.size()) - 1;
        const int64_t end = visible_end(b, row.pos, static_cast<int64_t>(seq.size()));
        row.visible.assign(seq.begin(), seq.begin() + end);
        rows_(row, std::span<float>(all.data() + t * V, static_cast<size_t>(V)));
      }
    }
    const int64_t first = b.last_logits_only ? T - 1 : 0;
    std::copy(all.begin() + first * V, all.end(), logits);
    if (b.write_cache) cache->append(b.tokens);
    return Status::Ok();
  }

  // Calls with the given write flag.
  int64_t count_calls(bool write_cache) const {
    return std::count_if(calls.begin(), calls.end(), [&](const FakeCall& c) { return c.write_cache == write_cache; });
  }

  mutable std::vector<FakeCall> calls;

 private:
  void defaults() {
    if (info_.model_type.empty()) info_.model_type = "fake";
    if (info_.max_position == 0) info_.max_position = 1 << 20;
    if (info_.hidden_size == 0) info_.hidden_size = 4;
  }
  // One past the last visible position for a row at `pos` (model.h's MaskMode table).
  static int64_t visible_end(const ForwardBatch& b, int64_t pos, int64_t n) {
    switch (b.mask) {
      case MaskMode::kCausal: return pos + 1;
      case MaskMode::kBlock: return std::min(n, (pos / b.block_len + 1) * b.block_len);
      case MaskMode::kFull: return n;
    }
    return n;
  }

  ModelInfo info_;
  RowScript rows_;
  ChunkScript chunk_;
};

}  // namespace optiq::test
