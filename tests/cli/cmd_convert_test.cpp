// `optiq convert`: help and argument errors. The conversion itself runs end to end in
// tests/scripts/quant_cli.cmake (static method) and tests/quant/convert_test.cpp (measured).
#include <gtest/gtest.h>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

const std::string kModel = tiny_model_arg();

TEST(CliConvert, HelpGoesToStdout) {
  expect_help("convert", "usage: optiq convert MODEL_DIR -o OUT");
}

TEST(CliConvert, ArgumentErrorsExitTwoNamingTheFlag) {
  TempDir out;
  CliRun r = run_optiq("convert " + kModel);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "MODEL_DIR and -o OUT are required")) << r.err;
  r = run_optiq("convert " + kModel + " -o " + shell_quote(out.str()) + " --group-size sixty");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "invalid value 'sixty' for --group-size")) << r.err;
  r = run_optiq("convert " + kModel + " -o " + shell_quote(out.str()) + " --frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unknown option --frobnicate")) << r.err;
  r = run_optiq("convert " + kModel + " extra -o " + shell_quote(out.str()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "unexpected argument extra")) << r.err;
  r = run_optiq("convert " + kModel + " -o");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(contains(r.err, "-o needs a value")) << r.err;
}

TEST(CliConvert, LibraryErrorsExitOne) {
  TempDir out;
  const CliRun r = run_optiq("convert /nonexistent/model -o " + shell_quote(out.str()) + " --method static --quiet");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "convert: ")) << r.err;
  EXPECT_TRUE(contains(r.err, "/nonexistent/model")) << r.err;
}

}  // namespace
}  // namespace optiq::test
