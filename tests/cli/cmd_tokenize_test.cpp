// `optiq tokenize`: help, usage errors, and ids equal to the library's tokenizer.
#include <gtest/gtest.h>

#include "tests/cli/cli_util.h"
#include "tokenizer/tokenizer.h"

namespace optiq::test {
namespace {

const std::string kModel = tiny_model_arg();

TEST(CliTokenize, HelpGoesToStdout) {
  expect_help("tokenize", "usage: optiq tokenize --model DIR");
}

TEST(CliTokenize, UsageErrorsExitTwo) {
  CliRun r = run_optiq("tokenize --text hi");  // no model
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "usage: optiq tokenize")) << r.err;
  r = run_optiq("tokenize --model " + kModel + " --text a --file b");  // two sources
  EXPECT_EQ(r.exit_code, 2);
  r = run_optiq("tokenize --model " + kModel + " --bogus");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown option '--bogus'")) << r.err;
  r = run_optiq("tokenize --model");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "--model: missing value")) << r.err;
}

TEST(CliTokenize, IdsEqualTheLibrarysEncoding) {
  auto tok = Tokenizer::from_dir(fixture("dhara-tiny"));
  ASSERT_TRUE(tok.ok()) << tok.status().ToString();
  std::string want;
  for (int32_t id : (*tok)->encode("The quick fox.", true)) want += (want.empty() ? "" : " ") + std::to_string(id);
  const CliRun r = run_optiq("tokenize --model " + kModel + " --text 'The quick fox.' --ids");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, want + "\n");
}

TEST(CliTokenize, JsonlErrorsNameFileAndLine) {
  TempDir t;
  const std::string path = t.str() + "/in.jsonl";
  std::ofstream(path) << "{\"text\": \"a\"}\n{oops\n";
  const CliRun r = run_optiq("tokenize --model " + kModel + " --jsonl " + shell_quote(path));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.out, "{\"ids\":[")) << r.out;  // the first line was answered
  EXPECT_TRUE(contains(r.err, "in.jsonl:2: invalid JSON")) << r.err;
  const CliRun missing = run_optiq("tokenize --model " + shell_quote(t.str()) + " --text x");
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(contains(missing.err, "error:")) << missing.err;
}

}  // namespace
}  // namespace optiq::test
