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
  expect_usage_error(r, "convert", "-o OUT is required");
  r = run_optiq("convert " + kModel + " -o " + shell_quote(out.str()) + " --group-size sixty");
  expect_usage_error(r, "convert", "invalid value 'sixty' for --group-size");
  r = run_optiq("convert " + kModel + " -o " + shell_quote(out.str()) + " --frobnicate");
  expect_usage_error(r, "convert", "unknown option --frobnicate");
  r = run_optiq("convert " + kModel + " extra -o " + shell_quote(out.str()));
  expect_usage_error(r, "convert", "unexpected argument 'extra'");
  r = run_optiq("convert " + kModel + " -o");
  expect_usage_error(r, "convert", "-o needs a value");
  expect_usage_error(run_optiq("convert -o " + shell_quote(out.str())), "convert", "MODEL_DIR is required");
  expect_usage_error(run_optiq("convert " + kModel + " -o " + shell_quote(out.str()) + " --method magic"), "convert",
                     "--method must be optiq or static, got 'magic'");
}

TEST(CliConvert, LibraryErrorsExitOne) {
  TempDir out;
  const CliRun r = run_optiq("convert /nonexistent/model -o " + shell_quote(out.str()) + " --method static --quiet");
  expect_runtime_error(r, "convert", "/nonexistent/model");
}

}  // namespace
}  // namespace optiq::test
