// `optiq generate`: help, usage errors (exit 2) and runtime errors (exit 1), flags that do not apply
// to the loaded model, and short runs whose stats line is consistent with itself, on the dhara-tiny
// and dgemma-tiny fixtures.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

const std::string kModel = tiny_model_arg();
const std::string kCanvas = shell_quote(fixture("dgemma-tiny"));

// Each flag is listed once, under its model family's heading, in the order common, dhara,
// DiffusionGemma, adapters.
TEST(CliGenerate, HelpListsEachFlagOnceByModelFamily) {
  const CliRun r = run_optiq("generate --help");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t common = r.out.find("\nEvery model:"), dhara = r.out.find("\nToken-by-token models (dhara):"),
               canvas = r.out.find("\nCanvas-diffusion models (DiffusionGemma):"),
               adapters = r.out.find("\nAdapters");
  ASSERT_NE(common, std::string::npos) << r.out;
  ASSERT_NE(dhara, std::string::npos) << r.out;
  ASSERT_NE(canvas, std::string::npos) << r.out;
  ASSERT_NE(adapters, std::string::npos) << r.out;
  EXPECT_LT(common, dhara);
  EXPECT_LT(dhara, canvas);
  EXPECT_LT(canvas, adapters);
  // A flag's own entry starts a line ("  --name"); every flag the parser accepts has exactly one.
  auto entries = [&](const std::string& flag) {
    int n = 0;
    for (size_t at = r.out.find("\n  " + flag); at != std::string::npos; at = r.out.find("\n  " + flag, at + 1)) {
      const char next = r.out[at + 3 + flag.size()];
      n += next == ' ' || next == '\n';
    }
    return n;
  };
  for (const char* flag : {"--model", "--prompt", "--prompt-ids", "--chat", "--max-tokens", "--seed", "--threshold",
                           "--json", "--threads", "--no-repack", "--mode", "--temp", "--repetition-penalty",
                           "--block-len", "--draft-len", "--sampler", "--steps", "--image", "--adapter"})
    EXPECT_EQ(entries(flag), 1) << flag << "\n" << r.out;
  auto section_of = [&](const std::string& flag) { return r.out.find("\n  " + flag + " "); };
  for (const char* flag : {"--mode", "--block-len", "--draft-len", "--repetition-penalty"}) {
    EXPECT_GT(section_of(flag), dhara) << flag;
    EXPECT_LT(section_of(flag), canvas) << flag;
  }
  for (const char* flag : {"--sampler", "--steps", "--image"}) {
    EXPECT_GT(section_of(flag), canvas) << flag;
    EXPECT_LT(section_of(flag), adapters) << flag;
  }
  EXPECT_GT(section_of("--adapter"), adapters);
}

TEST(CliGenerate, UsageErrorsExitTwo) {
  expect_usage_error(run_optiq("generate --model " + kModel), "generate", "give exactly one of --prompt and --prompt-ids");
  expect_usage_error(run_optiq("generate --bogus 1"), "generate", "unknown option --bogus");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids"), "generate", "--prompt-ids needs a value");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 1,x"), "generate",
                     "--prompt-ids: not a token id: \"x\"");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 --mode sideways"), "generate",
                     "--mode must be ar, diffusion or selfspec, got 'sideways'");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 --max-tokens lots"), "generate",
                     "--max-tokens: not a number: lots");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 --top-p 2"), "generate",
                     "--top-p must be in [0, 1], got 2");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 --mode diffusion --threshold 0"),
                     "generate", "--threshold must be positive, got 0");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 --chat"), "generate",
                     "--chat applies to --prompt, not --prompt-ids");
  expect_usage_error(run_optiq("generate --model " + kModel + " --prompt-ids 84 stray"), "generate",
                     "unexpected argument 'stray'");
}

// The command line was fine; the model or a file was not: exit 1 with the library's message.
TEST(CliGenerate, RuntimeErrorsExitOne) {
  expect_runtime_error(run_optiq("generate --model /nonexistent/model --prompt-ids 84"), "generate",
                       "/nonexistent/model");
  expect_runtime_error(
      run_optiq("generate --model " + kCanvas + " --prompt-ids 2,818 --image /nonexistent/picture.png --threads 1"),
      "generate", "/nonexistent/picture.png");
}

// Flags of the other model family are errors, as the server answers 400 for such request fields.
TEST(CliGenerate, FlagsThatDoNotApplyToTheModelAreUsageErrors) {
  const std::string dhara = "generate --model " + kModel + " --prompt-ids 84,104 --threads 1 ";
  expect_usage_error(run_optiq(dhara + "--sampler entropy-bound"), "generate",
                     "--sampler applies to canvas-diffusion models (DiffusionGemma); dhara_ar is not one");
  expect_usage_error(run_optiq(dhara + "--steps 4"), "generate", "--steps applies to canvas-diffusion models");
  expect_usage_error(run_optiq(dhara + "--image x.png"), "generate", "--image: dhara_ar has no vision tower");
  // dhara flags that belong to another decoding mode than the one chosen.
  expect_usage_error(run_optiq(dhara + "--draft-len 4"), "generate", "--draft-len applies to --mode selfspec, not --mode ar");
  expect_usage_error(run_optiq(dhara + "--block-len 16"), "generate",
                     "--block-len applies to --mode diffusion or selfspec, not --mode ar");
  expect_usage_error(run_optiq(dhara + "--mode selfspec --threshold 0.7"), "generate",
                     "--threshold applies to --mode diffusion, not --mode selfspec");
  expect_usage_error(run_optiq(dhara + "--threshold 0.7"), "generate", "--threshold applies to --mode diffusion");
  expect_usage_error(run_optiq(dhara + "--mode diffusion --temp 0.8"), "generate", "--mode diffusion decodes greedily");

  const std::string canvas = "generate --model " + kCanvas + " --prompt-ids 2,818 --threads 1 ";
  for (const char* flag : {"--mode selfspec", "--mode ar", "--temp 0.7", "--top-k 5", "--repetition-penalty 1.2",
                           "--block-len 16", "--draft-len 4"}) {
    SCOPED_TRACE(flag);
    const std::string name = std::string(flag).substr(0, std::string(flag).find(' '));
    const CliRun r = run_optiq(canvas + flag);
    expect_usage_error(r, "generate", name + " applies to token-by-token models (dhara); diffusion_gemma decodes by "
                                             "canvas diffusion");
    EXPECT_TRUE(r.out.empty()) << r.out;  // refused before decoding
  }
  expect_usage_error(run_optiq(canvas + "--sampler greedy"), "generate", "--sampler \"greedy\": expected entropy-bound");
  expect_usage_error(run_optiq(canvas + "--threshold 1.5"), "generate", "--threshold must be in [0, 1], got 1.5");
}

// The other side of the checks above: flags that do apply to the model and mode are accepted.
TEST(CliGenerate, FlagsThatApplyAreAccepted) {
  const std::string dhara = "generate --model " + kModel + " --prompt-ids 84,104 --max-tokens 4 --threads 1 ";
  for (const char* args : {"--mode diffusion --block-len 16 --threshold 0.7", "--mode selfspec --block-len 16 --draft-len 4",
                           "--temp 0.8 --top-k 5 --seed 2 --repetition-penalty 1.1"}) {
    const CliRun r = run_optiq(dhara + args);
    EXPECT_EQ(r.exit_code, 0) << args << "\n" << r.err;
  }
  const std::string image = std::string(OPTIQ_SOURCE_DIR) + "/tests/fuzz/corpus/image_decode/rgb_16x16_q50.jpg";
  const CliRun r = run_optiq("generate --model " + kCanvas + " --prompt-ids 2,818 --max-tokens 4 --threads 1 " +
                             "--sampler confidence-threshold --threshold 0.8 --steps 4 --seed 1 --image " + shell_quote(image));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(contains(r.err, "[confidence-threshold] prompt ")) << r.err;
}

// The stats line's tokens/forward is its generated count over the forward count it prints, for every
// dhara decoder (prefill included, so AR is exactly 1) and for canvas decoding (over decoder forwards,
// the count the line names as the denominator).
TEST(CliGenerate, StatsLineCountsForwardsAsItsTokensPerForward) {
  const std::regex dhara_stats(
      R"(\[(\w+)\] prompt 3 tokens, generated (\d+) tokens, (\d+) forwards \(1 prefill \+ (\d+)\), ([0-9.]+) tokens/forward)");
  for (const char* mode : {"ar", "diffusion", "selfspec"}) {
    SCOPED_TRACE(mode);
    const CliRun r = run_optiq("generate --model " + kModel + " --prompt-ids 84,104,101 --max-tokens 6 --threads 1 " +
                               "--repetition-penalty 1 --mode " + mode);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, dhara_stats)) << r.err;
    EXPECT_EQ(m[1].str(), mode);
    const double tokens = std::stod(m[2].str()), forwards = std::stod(m[3].str());
    EXPECT_EQ(std::stoi(m[4].str()), forwards - 1);
    EXPECT_GT(tokens, 0);
    EXPECT_NEAR(std::stod(m[5].str()), tokens / forwards, 0.005) << r.err;
    if (std::string(mode) == "ar") {
      EXPECT_EQ(tokens, forwards) << r.err;
    }
  }
  const CliRun r = run_optiq("generate --model " + kCanvas + " --prompt-ids 2,818,17 --max-tokens 8 --threads 1 --seed 3");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(
      r.err, m,
      std::regex(R"(generated (\d+) tokens, .* (\d+) decoder forwards \(\+ (\d+) encoder\), ([0-9.]+) tokens/decoder forward)")))
      << r.err;
  const double tokens = std::stod(m[1].str()), decoder = std::stod(m[2].str());
  ASSERT_GT(decoder, 0);
  EXPECT_GE(std::stoi(m[3].str()), 1);  // the prompt's prefill at least
  EXPECT_NEAR(std::stod(m[4].str()), tokens / decoder, 0.005) << r.err;
}

}  // namespace
}  // namespace optiq::test

namespace optiq::test {
namespace {

// With stdout and stderr in one pipe (a log file, `2>&1 | less`), the generated text and its newline
// come before the statistics line: stdout is flushed before the line goes to unbuffered stderr.
TEST(CliGenerate, TextPrecedesTheStatsLineInOneStream) {
  for (const char* mode : {"ar", "selfspec"}) {
    const std::string cmd = "timeout -k 5 60 " + shell_quote(optiq_binary()) + " generate --model " + tiny_model_arg() +
                            " --prompt-ids 1,2,3 --max-tokens 8 --mode " + mode + " 2>&1 </dev/null";
    std::FILE* p = ::popen(cmd.c_str(), "r");
    ASSERT_NE(p, nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ASSERT_EQ(::pclose(p), 0) << out;
    const size_t stats = out.find(std::string("[") + mode + "] prompt");
    ASSERT_NE(stats, std::string::npos) << out;
    ASSERT_GT(stats, 0u) << out;
    EXPECT_EQ(out[stats - 1], '\n') << out;
  }
}

}  // namespace
}  // namespace optiq::test
