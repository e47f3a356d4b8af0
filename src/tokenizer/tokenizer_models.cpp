// Tokenizer models (BPE, Unigram, WordPiece) and the lookup tables their encode hot path reads; each
// mirrors the Rust `tokenizers` model of the same name.
#include "tokenizer/pipeline_internal.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <queue>

#include "tokenizer/unicode.h"

namespace optiq::tok {

using nlohmann::json;
namespace u = optiq::unicode;

size_t StrHash::operator()(std::string_view s) const noexcept {
  // FNV-1a: the keys are short tokens, for which it beats std::hash's setup cost.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h ^ (h >> 32));
}

void FlatStrMap::build(const StrMap& m) {
  size_t cap = 16;
  while (cap < m.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  arena_.clear();
  for (auto& [k, id] : m) {
    uint64_t h = StrHash()(k);
    uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;
    uint64_t i = h & mask_;
    while (slots_[i].tag) i = (i + 1) & mask_;
    slots_[i] = Slot{tag, id, static_cast<uint32_t>(arena_.size()), static_cast<uint32_t>(k.size())};
    arena_ += k;
  }
}

int32_t FlatStrMap::find(std::string_view s) const {
  if (slots_.empty()) return -1;
  uint64_t h = StrHash()(s);
  uint32_t tag = static_cast<uint32_t>(h >> 32) | 1;
  for (uint64_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& sl = slots_[i];
    if (!sl.tag) return -1;
    if (sl.tag == tag && sl.len == s.size() && std::memcmp(arena_.data() + sl.off, s.data(), s.size()) == 0) return sl.id;
  }
}

void FlatPairMap::build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries) {
  size_t cap = 16;
  while (cap < entries.size() * 2) cap <<= 1;
  slots_.assign(cap, Slot{});
  mask_ = cap - 1;
  for (auto& [k, v] : entries) {
    uint64_t i = mix(k) & mask_;
    while (slots_[i].key != kEmpty && slots_[i].key != k) i = (i + 1) & mask_;
    if (slots_[i].key == k) continue;  // duplicate merge: the first (lowest rank) wins, as in HF
    slots_[i].key = k;
    slots_[i].value = v;
  }
}

namespace {

class BpeModel : public Model {
 public:
  FlatStrMap vocab;
  FlatPairMap merges;  // (left, right) -> (rank, new id)
  std::vector<int32_t> char_ids;  // id of each single code point < kCharTable as a token (no prefix/suffix), or -1
  static constexpr char32_t kCharTable = 0x800;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
  std::string prefix, suffix;
  int32_t byte_ids[256];  // <0xXX> ids for byte fallback, -1 if absent

  static uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (w.empty()) return;
    bool cacheable = w.size() <= sizeof(CacheSlot::key);
    uint64_t h = 0;
    CacheSlot* slot = nullptr;
    if (cacheable) {
      h = StrHash()(w) | 1;  // 0 marks an empty slot
      slot = &cache_[h & (cache_.size() - 1)];
      std::lock_guard<std::mutex> lock(cache_mu_);
      if (slot->hash == h && slot->key_len == w.size() && std::memcmp(slot->key, w.data(), w.size()) == 0) {
        out.insert(out.end(), slot->ids, slot->ids + slot->n_ids);
        return;
      }
    }
    size_t start = out.size();
    bool whole = false;
    if (ignore_merges) {
      int32_t id = vocab.find(w);
      if (id >= 0) { out.push_back(id); whole = true; }
    }
    if (!whole) merge_word(w, out);
    size_t n = out.size() - start;
    if (cacheable && n <= sizeof(CacheSlot::ids) / sizeof(int32_t)) {
      std::lock_guard<std::mutex> lock(cache_mu_);
      slot->hash = h;
      slot->key_len = static_cast<uint8_t>(w.size());
      std::memcpy(slot->key, w.data(), w.size());
      slot->n_ids = static_cast<uint8_t>(n);
      std::copy(out.begin() + static_cast<long>(start), out.end(), slot->ids);
    }
  }

 private:
  // Direct-mapped memo of recent words (a collision just evicts): one slot per lookup keeps it cache-friendly.
  struct alignas(64) CacheSlot {  // one cache line
    uint64_t hash = 0;
    uint8_t key_len = 0, n_ids = 0;
    char key[30];
    int32_t ids[6];
  };
  static constexpr size_t kMaxCacheSlots = 1 << 17;  // 8 MiB
  struct Sym { int32_t id; int32_t prev, next; uint32_t len; };
  struct Merge {
    int32_t rank; int32_t pos; int32_t new_id;
    bool operator<(const Merge& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }  // min-heap
  };

  void merge_word(std::string_view w, std::vector<int32_t>& out) const {
    std::vector<Sym> syms;
    syms.reserve(w.size());
    auto add = [&](int32_t id, uint32_t len) {
      int32_t n = static_cast<int32_t>(syms.size());
      syms.push_back(Sym{id, n - 1, -1, len});
      if (n > 0) syms[n - 1].next = n;
    };
    // A pending unknown token (HF adds it lazily so that fuse_unk can extend it): id < 0 when none.
    int32_t unk_pending = -1;
    uint32_t unk_len = 0;
    std::string buf;
    size_t i = 0;
    while (i < w.size()) {
      size_t start = i;
      u::decode_one(w, i);
      std::string_view ch = w.substr(start, i - start);
      bool first = start == 0, last = i >= w.size();
      std::string_view s = ch;
      if ((!first && !prefix.empty()) || (last && !suffix.empty())) {
        buf.clear();
        if (!first) buf += prefix;
        buf += ch;
        if (last) buf += suffix;
        s = buf;
      }
      uint32_t blen = static_cast<uint32_t>(ch.size());
      int32_t id = -1;
      if (s.data() == ch.data() && !char_ids.empty() && ch.size() <= 2) {
        size_t k = 0;
        int32_t cp = u::decode_one(ch, k);
        id = cp >= 0 && static_cast<char32_t>(cp) < kCharTable ? char_ids[static_cast<size_t>(cp)] : vocab.find(s);
      } else {
        id = vocab.find(s);
      }
      if (id >= 0) {
        if (unk_pending >= 0) { add(unk_pending, unk_len); unk_pending = -1; }
        add(id, blen);
        continue;
      }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : s) if (byte_ids[b] < 0) { all = false; break; }
        if (all) {
          for (unsigned char b : s) add(byte_ids[b], 1);
          continue;
        }
      }
      if (unk_id) {
        if (unk_pending >= 0 && fuse_unk) unk_len += blen;
        else {
          if (unk_pending >= 0) add(unk_pending, unk_len);
          unk_pending = *unk_id;
          unk_len = blen;
        }
      }
    }
    if (unk_pending >= 0) add(unk_pending, unk_len);

    if (syms.size() > 1 && !merges.empty()) {
      std::priority_queue<Merge> queue;
      for (size_t k = 0; k + 1 < syms.size(); ++k) {
        auto it = merges.find(key(syms[k].id, syms[k + 1].id));
        if (it) queue.push(Merge{it->first, static_cast<int32_t>(k), it->second});
      }
      while (!queue.empty()) {
        Merge top = queue.top();
        queue.pop();
        Sym& cur = syms[top.pos];
        if (cur.len == 0 || cur.next < 0) continue;
        int32_t next_pos = cur.next;
        Sym right = syms[next_pos];
        auto it = merges.find(key(cur.id, right.id));
        if (!it || it->second != top.new_id) continue;
        cur.id = top.new_id;
        cur.len += right.len;
        cur.next = right.next;
        syms[next_pos].len = 0;
        if (right.next >= 0) syms[right.next].prev = top.pos;
        if (cur.prev >= 0) {
          auto p = merges.find(key(syms[cur.prev].id, cur.id));
          if (p) queue.push(Merge{p->first, cur.prev, p->second});
        }
        if (cur.next >= 0) {
          auto n = merges.find(key(cur.id, syms[cur.next].id));
          if (n) queue.push(Merge{n->first, top.pos, n->second});
        }
      }
    }
    for (auto& s : syms) if (s.len) out.push_back(s.id);
  }

  mutable std::mutex cache_mu_;
  mutable std::vector<CacheSlot> cache_;

 public:
  // Sized to the vocabulary (a power of two): big vocabularies see many distinct words.
  void init_cache(size_t vocab_size) {
    size_t n = 256;
    while (n < vocab_size && n < kMaxCacheSlots) n <<= 1;
    cache_.assign(n, CacheSlot{});
  }
};

// Unigram (SentencePiece) model: Viterbi best segmentation, as HF's Unigram::encode_optimized.
class UnigramModel : public Model {
 public:
  FlatStrMap vocab;
  std::vector<double> scores;  // by id
  std::optional<int32_t> unk_id;
  bool byte_fallback = false, fuse_unk = true;
  size_t max_piece_bytes = 1;
  double min_score = 0;
  int32_t byte_ids[256];
  static constexpr double kUnkPenalty = 10.0;

  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (w.empty()) return;
    struct Node { int64_t starts_at = -1; int32_t id = -1; double score = 0; };
    std::vector<Node> best(w.size() + 1);
    best[0].starts_at = 0;
    double unk_score = min_score - kUnkPenalty;
    size_t pos = 0;
    while (pos < w.size()) {
      size_t next = pos;
      u::decode_one(w, next);
      size_t mblen = next - pos;
      double here = best[pos].score;
      bool has_single = false;
      // Pieces starting at pos, shortest first (the trie's common-prefix order in HF).
      size_t end = pos;
      while (end < w.size() && end - pos < max_piece_bytes) {
        u::decode_one(w, end);
        if (end - pos > max_piece_bytes) break;
        int32_t id = vocab.find(w.substr(pos, end - pos));
        if (id < 0) continue;
        Node& t = best[end];
        double cand = scores[static_cast<size_t>(id)] + here;
        if (t.starts_at < 0 || cand > t.score) { t.score = cand; t.starts_at = static_cast<int64_t>(pos); t.id = id; }
        if (end - pos == mblen) has_single = true;
      }
      if (!has_single && unk_id) {
        Node& t = best[pos + mblen];
        double cand = unk_score + here;
        if (t.starts_at < 0 || cand > t.score) { t.score = cand; t.starts_at = static_cast<int64_t>(pos); t.id = *unk_id; }
      }
      pos = next;
    }
    // Backtrack into strings (fusing consecutive unknowns), then map strings to ids.
    std::vector<std::string_view> pieces;
    size_t e = w.size();
    size_t unk_start = std::string_view::npos, unk_end = 0;
    while (e > 0) {
      const Node& n = best[e];
      if (n.starts_at < 0) return;  // unreachable without an unk token: HF fails; emit nothing
      size_t st = static_cast<size_t>(n.starts_at);
      if (fuse_unk && unk_id && n.id == *unk_id) {
        if (unk_start == std::string_view::npos) unk_end = e;
        unk_start = st;
      } else {
        if (unk_start != std::string_view::npos) { pieces.push_back(w.substr(unk_start, unk_end - unk_start)); unk_start = std::string_view::npos; }
        pieces.push_back(w.substr(st, e - st));
      }
      e = st;
    }
    if (unk_start != std::string_view::npos) pieces.push_back(w.substr(unk_start, unk_end - unk_start));
    for (size_t k = pieces.size(); k-- > 0;) {
      int32_t id = vocab.find(pieces[k]);
      if (id >= 0) { out.push_back(id); continue; }
      if (byte_fallback) {
        bool all = true;
        for (unsigned char b : pieces[k]) if (byte_ids[b] < 0) { all = false; break; }
        if (all) { for (unsigned char b : pieces[k]) out.push_back(byte_ids[b]); continue; }
      }
      if (unk_id) out.push_back(*unk_id);
    }
  }
};

class WordPieceModel : public Model {
 public:
  const StrMap* vocab = nullptr;
  int32_t unk_id = 0;
  std::string prefix = "##";
  size_t max_chars = 100;
  void tokenize(std::string_view w, std::vector<int32_t>& out) const override {
    if (u::count_chars(w) > max_chars) { out.push_back(unk_id); return; }
    std::vector<int32_t> ids;
    size_t start = 0;
    std::string buf;
    while (start < w.size()) {
      size_t end = w.size();
      int32_t found = -1;
      while (start < end) {
        buf.clear();
        if (start > 0) buf += prefix;
        buf += w.substr(start, end - start);
        auto it = vocab->find(buf);
        if (it != vocab->end()) { found = it->second; break; }
        // step back one character
        do { --end; } while (end > start && (static_cast<unsigned char>(w[end]) & 0xC0) == 0x80);
      }
      if (found < 0) { out.push_back(unk_id); return; }
      ids.push_back(found);
      start = end;
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
};

}  // namespace

Result<std::unique_ptr<Model>> make_model(const json& m, const std::string& mw, const std::string& mtype,
                                          const StrMap& vocab, std::vector<double> unigram_scores) {
  if (mtype == "BPE") {
    auto bpe = std::make_unique<BpeModel>();
    bpe->vocab.build(vocab);
    bpe->init_cache(vocab.size());
    OPTIQ_ASSIGN_OR_RETURN(bpe->fuse_unk, get_bool(m, "fuse_unk", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->byte_fallback, get_bool(m, "byte_fallback", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->ignore_merges, get_bool(m, "ignore_merges", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(bpe->prefix, get_str(m, "continuing_subword_prefix", mw, std::string()));
    OPTIQ_ASSIGN_OR_RETURN(bpe->suffix, get_str(m, "end_of_word_suffix", mw, std::string()));
    if (m.contains("dropout") && !m["dropout"].is_null()) {
      if (!m["dropout"].is_number()) return Status::InvalidArgument(field(mw, "dropout") + ": expected a number");
      double d = m["dropout"].get<double>();
      if (d != 0.0 && d != 1.0 && !(d > 0.0 && d < 1.0)) return Status::InvalidArgument(field(mw, "dropout") + ": must be in [0, 1]");
      // Dropout only applies in training; inference (and HF's encode with dropout) is deterministic here.
    }
    OPTIQ_ASSIGN_OR_RETURN(std::string unk, get_str(m, "unk_token", mw, std::string()));
    if (!unk.empty()) {
      auto it = vocab.find(unk);
      if (it == vocab.end()) return Status::InvalidArgument(field(mw, "unk_token") + ": '" + unk + "' is not in the vocabulary");
      bpe->unk_id = it->second;
    }
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      auto it = vocab.find(std::string_view(buf));
      bpe->byte_ids[b] = it == vocab.end() ? -1 : it->second;
    }
    auto mg = m.find("merges");
    if (mg != m.end() && !mg->is_null()) {
      if (!mg->is_array()) return Status::InvalidArgument(field(mw, "merges") + ": expected an array");
      std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> entries;
      entries.reserve(mg->size());
      std::string merged;
      for (size_t k = 0; k < mg->size(); ++k) {
        const json& e = (*mg)[k];
        std::string_view a, b;
        std::string tmp;
        if (e.is_string()) {
          const std::string& s = e.get_ref<const std::string&>();
          size_t sp = s.find(' ');
          if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
            return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: expected \"a b\", got '" + s + "'");
          a = std::string_view(s).substr(0, sp);
          b = std::string_view(s).substr(sp + 1);
        } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
          a = e[0].get_ref<const std::string&>();
          b = e[1].get_ref<const std::string&>();
        } else {
          return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: expected a pair of strings");
        }
        int32_t ia = bpe->vocab.find(a), ib = bpe->vocab.find(b);
        std::string_view b_rest = b;
        if (!bpe->prefix.empty() && b_rest.substr(0, bpe->prefix.size()) == bpe->prefix) b_rest.remove_prefix(bpe->prefix.size());
        merged.assign(a);
        merged.append(b_rest);
        int32_t im = bpe->vocab.find(merged);
        if (ia < 0 || ib < 0 || im < 0)
          return Status::InvalidArgument(field(mw, "merges") + "[" + std::to_string(k) + "]: token '" +
                                         std::string(ia < 0 ? a : ib < 0 ? b : std::string_view(merged)) +
                                         "' is not in the vocabulary");
        entries.emplace_back(BpeModel::key(ia, ib), std::make_pair(static_cast<int32_t>(k), im));
      }
      bpe->merges.build(entries);
    }
    if (bpe->prefix.empty() && bpe->suffix.empty()) {
      bpe->char_ids.assign(BpeModel::kCharTable, -1);
      for (char32_t c = 0; c < BpeModel::kCharTable; ++c) {
        std::string s;
        u::append(s, c);
        auto it = vocab.find(s);
        if (it != vocab.end()) bpe->char_ids[c] = it->second;
      }
    }
    return std::unique_ptr<Model>(std::move(bpe));
  } else if (mtype == "Unigram") {
    auto ug = std::make_unique<UnigramModel>();
    ug->vocab.build(vocab);
    ug->scores = std::move(unigram_scores);
    OPTIQ_ASSIGN_OR_RETURN(ug->byte_fallback, get_bool(m, "byte_fallback", mw, false));
    OPTIQ_ASSIGN_OR_RETURN(int64_t unk, get_int(m, "unk_id", mw, -1));
    if (unk >= static_cast<int64_t>(ug->scores.size())) return Status::InvalidArgument(field(mw, "unk_id") + ": " + std::to_string(unk) + " is not a vocabulary index");
    if (unk >= 0) ug->unk_id = static_cast<int32_t>(unk);
    ug->min_score = ug->scores.empty() ? 0.0 : *std::min_element(ug->scores.begin(), ug->scores.end());
    for (auto& [piece, id] : vocab) ug->max_piece_bytes = std::max(ug->max_piece_bytes, piece.size());
    for (int b = 0; b < 256; ++b) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "<0x%02X>", b);
      ug->byte_ids[b] = ug->vocab.find(buf);
    }
    return std::unique_ptr<Model>(std::move(ug));
  } else if (mtype == "WordPiece") {
    auto wp = std::make_unique<WordPieceModel>();
    wp->vocab = &vocab;
    OPTIQ_ASSIGN_OR_RETURN(std::string unk, get_str(m, "unk_token", mw, std::string("[UNK]")));
    auto it = vocab.find(unk);
    if (it == vocab.end()) return Status::InvalidArgument(field(mw, "unk_token") + ": '" + unk + "' is not in the vocabulary");
    wp->unk_id = it->second;
    OPTIQ_ASSIGN_OR_RETURN(wp->prefix, get_str(m, "continuing_subword_prefix", mw, std::string("##")));
    OPTIQ_ASSIGN_OR_RETURN(int64_t mc, get_int(m, "max_input_chars_per_word", mw, 100));
    wp->max_chars = static_cast<size_t>(std::max<int64_t>(0, mc));
    return std::unique_ptr<Model>(std::move(wp));
  } else {
    return Status::Unsupported(field(mw, "type") + ": model '" + mtype + "' is not supported");
  }
}

}  // namespace optiq::tok
