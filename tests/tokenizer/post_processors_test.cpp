// Post-processors built from their tokenizer.json objects (src/tokenizer/post_processors.cpp).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tokenizer/pipeline_internal.h"

namespace optiq::tok {
namespace {

using nlohmann::json;
using Ids = std::vector<int32_t>;

// The pipeline special tokens are looked up in when the post-processor does not list their ids.
std::unique_ptr<Pipeline> lookup_pipeline() {
  auto r = Pipeline::from_json(json::parse(R"({
    "added_tokens": [{"id": 10, "content": "<s>", "special": true}, {"id": 11, "content": "</s>", "special": true}],
    "model": {"type": "WordPiece", "unk_token": "?", "vocab": {"?": 0, "x": 1, "[SEP]": 2}}})"),
                               "tokenizer.json");
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return std::move(r).value();
}

Ids process(const std::string& config, Ids ids, bool add_special_tokens = true) {
  auto pl = lookup_pipeline();
  auto p = make_post_processor(json::parse(config), "post_processor", *pl);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (!p.ok()) return {-1};
  (*p)->process(ids, add_special_tokens);
  return ids;
}

std::string error_of(const std::string& config) {
  auto pl = lookup_pipeline();
  auto p = make_post_processor(json::parse(config), "post_processor", *pl);
  EXPECT_FALSE(p.ok()) << config;
  return p.ok() ? std::string() : p.status().message();
}

TEST(TokenizerPostProcessors, TemplateProcessingStringForm) {
  const std::string config = R"({"type": "TemplateProcessing", "single": "[CLS]:0 $A:0 [SEP]:0",
      "pair": "[CLS] $A [SEP] $B:1 [SEP]:1",
      "special_tokens": {"[CLS]": {"id": "[CLS]", "ids": [101], "tokens": ["[CLS]"]},
                         "[SEP]": {"id": "[SEP]", "ids": [102, 103], "tokens": ["[SEP]", "x"]}}})";
  // Every id a special token lists is inserted; the ":0" type ids do not matter for ids.
  EXPECT_EQ(process(config, {7, 8}), (Ids{101, 7, 8, 102, 103}));
  EXPECT_EQ(process(config, {7, 8}, /*add_special_tokens=*/false), (Ids{7, 8}));
  EXPECT_EQ(process(config, {}), (Ids{101, 102, 103}));
  // "$" and "$0" also name the sequence; tokens not in special_tokens come from the vocabulary.
  EXPECT_EQ(process(R"({"type": "TemplateProcessing", "single": "<s> $ </s> [SEP]"})", {5}), (Ids{10, 5, 11, 2}));
  EXPECT_EQ(process(R"({"type": "TemplateProcessing", "single": "$0 </s>"})", {5}), (Ids{5, 11}));
}

TEST(TokenizerPostProcessors, TemplateProcessingArrayForm) {
  const std::string config = R"({"type": "TemplateProcessing",
      "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": "</s>", "type_id": 0}}]})";
  EXPECT_EQ(process(config, {4, 4}), (Ids{10, 4, 4, 11}));
}

TEST(TokenizerPostProcessors, BertAndRobertaProcessing) {
  EXPECT_EQ(process(R"({"type": "BertProcessing", "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]})", {7}),
            (Ids{101, 7, 102}));
  EXPECT_EQ(process(R"({"type": "RobertaProcessing", "cls": ["<s>", 0], "sep": ["</s>", 2], "trim_offsets": true})", {7}),
            (Ids{0, 7, 2}));
  EXPECT_EQ(process(R"({"type": "BertProcessing", "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]})", {7}, false), (Ids{7}));
}

TEST(TokenizerPostProcessors, ByteLevelIsANoOpAndSequencesCompose) {
  EXPECT_EQ(process(R"({"type": "ByteLevel", "trim_offsets": true})", {1, 2}), (Ids{1, 2}));
  EXPECT_EQ(process(R"({"type": "Sequence", "processors": [{"type": "ByteLevel"},
                        {"type": "TemplateProcessing", "single": "<s> $A"}]})",
                    {1, 2}),
            (Ids{10, 1, 2}));
}

TEST(TokenizerPostProcessors, MalformedConfigsNameTheField) {
  EXPECT_EQ(error_of(R"({"type": "TemplateProcessing", "single": "[NOPE] $A"})"),
            "post_processor.single: special token '[NOPE]' is not defined");
  EXPECT_EQ(error_of(R"({"type": "TemplateProcessing"})"), "post_processor.single: missing");
  EXPECT_EQ(error_of(R"({"type": "TemplateProcessing", "single": 3})"),
            "post_processor.single: expected an array or a string");
  EXPECT_EQ(error_of(R"({"type": "TemplateProcessing", "single": [{"Pair": 1}]})"),
            "post_processor.single: unexpected item {\"Pair\":1}");
  EXPECT_EQ(error_of(R"({"type": "TemplateProcessing", "single": "[X] $A", "special_tokens": {"[X]": {"ids": ["a"]}}})"),
            "post_processor.special_tokens.[X].ids: expected integers");
  EXPECT_EQ(error_of(R"({"type": "BertProcessing", "cls": ["[CLS]"], "sep": ["[SEP]", 102]})"),
            "post_processor.cls: expected [token, id]");
  EXPECT_EQ(error_of(R"({"type": "Sequence", "processors": [{"type": "Nope"}]})"),
            "post_processor.processors[0].type: post-processor 'Nope' is not supported");
}

}  // namespace
}  // namespace optiq::tok
