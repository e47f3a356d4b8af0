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
  expect_usage_error(run_optiq("tokenize --text hi"), "tokenize", "--model DIR is required");
  expect_usage_error(run_optiq("tokenize --model " + kModel + " --text a --file b"), "tokenize",
                     "give exactly one of --text, --file and --jsonl");
  expect_usage_error(run_optiq("tokenize --model " + kModel + " --bogus"), "tokenize", "unknown option --bogus");
  expect_usage_error(run_optiq("tokenize --model"), "tokenize", "--model needs a value");
  expect_usage_error(run_optiq("tokenize --model " + kModel + " --text a extra"), "tokenize",
                     "unexpected argument 'extra'");
  expect_usage_error(run_optiq("chat-template --model " + kModel), "chat-template",
                     "give exactly one of --messages and --request");
  expect_usage_error(run_optiq("chat-template --model " + kModel + " --messages '[oops'"), "chat-template",
                     "--messages: invalid JSON");
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
  expect_runtime_error(r, "tokenize", "in.jsonl:2: invalid JSON");
  EXPECT_TRUE(contains(r.out, "{\"ids\":[")) << r.out;  // the first line was answered
  // No tokenizer in the directory: the loader's message, naming the directory.
  expect_runtime_error(run_optiq("tokenize --model " + shell_quote(t.str()) + " --text x"), "tokenize", t.str());
  expect_runtime_error(run_optiq("chat-template --model " + kModel + " --request " + shell_quote(t.str() + "/none.json")),
                       "chat-template", "none.json: cannot open");
}

}  // namespace
}  // namespace optiq::test
