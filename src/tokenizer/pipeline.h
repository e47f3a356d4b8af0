// Internal: the stages of a Hugging Face tokenizer (see tokenizer.h for the behaviour contract).
// Each stage is built from its tokenizer.json object and is immutable afterwards.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/status.h"

namespace optiq::tok {

struct StrHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const noexcept;
};
struct StrEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const noexcept { return a == b; }
};
using StrMap = std::unordered_map<std::string, int32_t, StrHash, StrEq>;

// Read-only open-addressing map from strings to ids for the encode hot path: one 16-byte probe slot plus
// one read of the key bytes from a contiguous arena per lookup (std::unordered_map chases node pointers).
class FlatStrMap {
 public:
  void build(const StrMap& m);
  // -1 when absent.
  int32_t find(std::string_view s) const;

 private:
  struct Slot { uint32_t tag = 0; int32_t id = -1; uint32_t off = 0; uint32_t len = 0; };
  std::vector<Slot> slots_;
  std::string arena_;
  uint64_t mask_ = 0;
};

// Read-only open-addressing map from a pair of ids to (rank, merged id).
class FlatPairMap {
 public:
  void build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries);
  // nullptr when absent.
  const std::pair<int32_t, int32_t>* find(uint64_t key) const {
    if (slots_.empty()) return nullptr;
    for (uint64_t i = mix(key) & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.key == key) return &s.value;
      if (s.key == kEmpty) return nullptr;
    }
  }
  bool empty() const { return slots_.empty(); }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  static uint64_t mix(uint64_t k) { k ^= k >> 33; k *= 0xff51afd7ed558ccdull; k ^= k >> 33; return k; }
  struct Slot { uint64_t key = kEmpty; std::pair<int32_t, int32_t> value{}; };
  std::vector<Slot> slots_;
  uint64_t mask_ = 0;
};

// A PCRE2 regex compiled with UTF + UCP and JIT.
class Regex {
 public:
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  static Result<std::unique_ptr<Regex>> compile(const std::string& pattern);
  // Appends the [start, end) byte ranges of successive non-overlapping matches in valid UTF-8 `s`.
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  Regex() = default;
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

// A pattern given as {"String": s} or {"Regex": r}.
class Pattern {
 public:
  static Result<Pattern> from_json(const nlohmann::json& j, const std::string& where);
  void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;
  bool is_empty_string() const { return !regex_ && literal_.empty(); }
  const Regex* regex() const { return regex_.get(); }

 private:
  std::string literal_;
  std::shared_ptr<Regex> regex_;
};

enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// A piece of text between pre-tokenization steps. `at_start`: begins at offset 0 of the input.
struct Piece {
  std::string text;
  bool at_start = false;
};

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string s) const = 0;
};

// GPT-2 style pre-tokenization: (optional prefix space,) split by one regex into isolated pieces (or keep the
// text whole when regex is null), then map every byte to the byte-level alphabet.
struct ByteLevelPlan {
  const Regex* regex = nullptr;
  bool add_prefix_space = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
  // Whether this pre-tokenizer is exactly a ByteLevelPlan; lets the pipeline stream pieces into the model
  // without materializing them (same result as pre_tokenize, much less copying).
  virtual std::optional<ByteLevelPlan> byte_level_plan() const { return std::nullopt; }
};

class Model {
 public:
  virtual ~Model() = default;
  virtual void tokenize(std::string_view word, std::vector<int32_t>& out) const = 0;
};

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // raw: keep byte sequences as bytes (no U+FFFD substitution); the streaming detokenizer needs them.
  virtual void decode(std::vector<std::string>& tokens, bool raw) const = 0;
};

struct AddedToken {
  int32_t id = -1;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// Leftmost-longest matcher for added tokens (a byte trie; HF uses Aho-Corasick with the same semantics).
class AddedMatcher {
 public:
  void add(std::string_view pattern, int32_t token_index);
  bool empty() const { return nodes_.size() <= 1; }
  // Longest pattern starting at s[pos]: returns (length, token_index) or length 0.
  std::pair<size_t, int32_t> longest_at(std::string_view s, size_t pos) const;
  bool may_start(unsigned char c) const { return first_[c]; }

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
    int32_t token = -1;
  };
  std::vector<Node> nodes_ = std::vector<Node>(1);
  bool first_[256] = {};
};

// Everything needed to encode and decode; built from tokenizer.json.
class Pipeline {
 public:
  static Result<std::unique_ptr<Pipeline>> from_json(const nlohmann::json& j, const std::string& name);

  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  std::vector<std::string> tokens_for(std::span<const int32_t> ids, bool skip_special) const;
  std::string decode_tokens(std::vector<std::string> tokens, bool raw) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;
  const std::string* id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  void split_added(std::string_view s, const AddedMatcher& m, size_t base_offset,
                   std::vector<std::pair<int32_t, std::pair<size_t, size_t>>>& out) const;
  void encode_segment(std::string_view seg, bool at_start, std::vector<int32_t>& out) const;

  std::unique_ptr<Normalizer> normalizer_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::optional<ByteLevelPlan> plan_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<PostProcessor> post_processor_;
  std::unique_ptr<Decoder> decoder_;
  std::vector<AddedToken> added_;
  AddedMatcher raw_matcher_, norm_matcher_;
  StrMap vocab_;                          // model vocabulary
  StrMap added_by_content_;               // added tokens
  std::vector<std::string> id_to_token_;  // model + added tokens
  std::vector<uint8_t> special_;          // per id
};

}  // namespace optiq::tok
