// Internal to the tokenizer pipeline: what the stage files (normalizers.cpp, pre_tokenizers.cpp,
// tokenizer_models.cpp, post_processors.cpp, decoders.cpp) share with pipeline.cpp, which builds a Pipeline
// from tokenizer.json by calling the make_* factories below. Only src/tokenizer and its tests include it.
//
// Every factory takes one tokenizer.json object and `where`, the path of that object for error messages
// ("tokenizer.json: normalizer.normalizers[1]"). It returns InvalidArgument naming the field for malformed
// input and Unsupported for a known-but-unimplemented "type"; the stage it builds is immutable and safe to
// use from several threads.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/pipeline.h"

namespace optiq::tok {

// ---- tokenizer.json field readers (pipeline.cpp) ----
// A missing or null key gives `def`; a present key of the wrong JSON type is InvalidArgument.
std::string field(const std::string& where, const std::string& key);  // "where.key"
Result<std::string> get_str(const nlohmann::json& j, const std::string& key, const std::string& where,
                            std::optional<std::string> def = std::nullopt);  // no def: the key is required
Result<bool> get_bool(const nlohmann::json& j, const std::string& key, const std::string& where, bool def);
Result<int64_t> get_int(const nlohmann::json& j, const std::string& key, const std::string& where, int64_t def);
// A string of exactly one character; the empty string also gives `def`.
Result<char32_t> get_char(const nlohmann::json& j, const std::string& key, const std::string& where, char32_t def);

// ---- String rewriting shared by normalizers, pre-tokenizers and decoders (pipeline.cpp) ----
// Every non-overlapping occurrence of `from` (left to right) replaced by `to`; an empty `from` changes nothing.
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);
// Every match of `p` replaced by `content`.
std::string replace_pattern(std::string_view s, const Pattern& p, std::string_view content);

// ---- Metaspace's prepend_scheme, read by the pre-tokenizer and the decoder (pre_tokenizers.cpp) ----
enum class Prepend { kAlways, kFirst, kNever };
// "prepend_scheme" ("always" | "first" | "never"), or the older boolean "add_prefix_space" when it is absent.
Result<Prepend> get_prepend(const nlohmann::json& j, const std::string& where);

// ---- Stage factories ----
// normalizers.cpp: Sequence, NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, BertNormalizer.
Result<std::unique_ptr<Normalizer>> make_normalizer(const nlohmann::json& j, const std::string& where);
// pre_tokenizers.cpp: Sequence, Split, ByteLevel, Digits, Punctuation, WhitespaceSplit, Whitespace,
// BertPreTokenizer, Metaspace.
Result<std::unique_ptr<PreTokenizer>> make_pre_tokenizer(const nlohmann::json& j, const std::string& where);
// tokenizer_models.cpp: the model object `m` of type `mtype` ("BPE", "Unigram" or "WordPiece"), over the
// vocabulary the pipeline already parsed from m["vocab"]. `unigram_scores` holds the Unigram scores by id
// (empty for the other types). WordPiece keeps a pointer to `vocab`, which must outlive the model (the
// Pipeline owns both).
Result<std::unique_ptr<Model>> make_model(const nlohmann::json& m, const std::string& mw, const std::string& mtype,
                                          const StrMap& vocab, std::vector<double> unigram_scores);
// post_processors.cpp: Sequence, ByteLevel (a no-op on ids), TemplateProcessing, BertProcessing,
// RobertaProcessing. Special tokens not listed in the object are looked up in `pl` (read only here).
Result<std::unique_ptr<PostProcessor>> make_post_processor(const nlohmann::json& j, const std::string& where,
                                                           const Pipeline& pl);
// decoders.cpp: Sequence, ByteLevel, ByteFallback, Fuse, Replace, Strip, Metaspace, WordPiece.
Result<std::unique_ptr<Decoder>> make_decoder(const nlohmann::json& j, const std::string& where);

}  // namespace optiq::tok
