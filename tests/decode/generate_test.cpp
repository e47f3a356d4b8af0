#include "decode/generate.h"

#include <gtest/gtest.h>

#include "tests/test_util.h"

namespace optiq {
namespace {

// Token-by-token decoders refuse canvas-diffusion models instead of running their encoder as an AR model.
TEST(Generate, RejectsCanvasDiffusionModels) {
  auto m = load_model(test::fixture("dgemma-tiny"));
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_GT((*m)->info().canvas_length, 0);
  ThreadPool pool(1);
  std::vector<int32_t> prompt{2, 10, 20};
  auto r = generate(**m, pool, prompt, GenerateOptions{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), Status::Code::kUnsupported);
  EXPECT_NE(r.status().message().find("canvas"), std::string::npos);
}

TEST(Generate, RejectsBadOptionsNamingTheProblem) {
  auto m = load_model(test::fixture("dhara-tiny"));
  ASSERT_TRUE(m.ok());
  ThreadPool pool(1);
  std::vector<int32_t> prompt{84, 104};
  GenerateOptions o;
  o.mode = DecodeMode::kDiffusion;
  o.sampling.temperature = 0.7f;
  EXPECT_NE(generate(**m, pool, prompt, o).status().message().find("greedily"), std::string::npos);
  o = {};
  std::vector<int32_t> bad{84, 999};
  EXPECT_NE(generate(**m, pool, bad, o).status().message().find("outside the vocabulary"), std::string::npos);
  EXPECT_FALSE(generate(**m, pool, std::vector<int32_t>{}, o).ok());
  o.max_new_tokens = 100000;
  EXPECT_NE(generate(**m, pool, prompt, o).status().message().find("context"), std::string::npos);
}

}  // namespace
}  // namespace optiq
