// `optiq serve` as a process: starts on a free loopback port, answers one request, stops on SIGTERM.
// Bounded in time: every wait has a deadline, and the server is killed if it outlives the test.
#include <fcntl.h>
#include <httplib.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/cli/cli_util.h"

namespace optiq::test {
namespace {

using Clock = std::chrono::steady_clock;

TEST(CliServe, HelpAndFlagErrors) {
  expect_help("serve", "usage: optiq serve");
  expect_usage_error(run_optiq("serve --port 70000"), "serve", "--port must be in [0, 65535], got 70000");
  expect_usage_error(run_optiq("serve --temp hot"), "serve", "--temp: not a number: hot");
  expect_usage_error(run_optiq("serve --bogus"), "serve", "unknown option --bogus");
  // --mtp is self-speculation: a DiffusionGemma model has none (found once the model is read).
  const CliRun r = run_optiq("serve --model " + shell_quote(fixture("dgemma-tiny")) + " --port 0 --threads 1 --mtp");
  expect_usage_error(r, "serve", "--mtp (self-speculation) needs a block-diffusion model");
  EXPECT_FALSE(contains(r.out, "listening")) << r.out;
  // An origin with a path never equals a browser's Origin header: refused before the model loads.
  expect_usage_error(run_optiq("serve --allowed-origins http://ok.example,http://app.example/"), "serve",
                     "--allowed-origins: \"http://app.example/\" is not an origin");
}

// A model that does not load stops the server before it listens: exit 1 with the loader's message,
// and never a "listening" line (a client waiting for it would otherwise connect to a dead server).
TEST(CliServe, BadModelExitsOneWithTheLoadersMessage) {
  TempDir t;
  CliRun r = run_optiq("serve --model " + shell_quote(t.str() + "/absent") + " --port 0 --threads 1");
  expect_runtime_error(r, "serve", t.str() + "/absent");
  EXPECT_FALSE(contains(r.out, "listening")) << r.out;
  // A directory with a config.json but no weights.
  std::ofstream(t.str() + "/config.json") << R"({"model_type": "dhara_ar"})";
  r = run_optiq("serve --model " + shell_quote(t.str()) + " --port 0 --threads 1");
  expect_runtime_error(r, "serve", t.str());
  EXPECT_FALSE(contains(r.out, "listening")) << r.out;
}

// Adapters are checked at startup (while the model loads, before the port is bound): a bad one stops
// the server with the module or name at fault.
TEST(CliServe, AdapterErrorsStopTheServer) {
  const std::string model = " --model " + tiny_model_arg() + " --port 0 --threads 1";
  const std::string ad = shell_quote(fixture("lora/dhara-tiny-text/init"));
  CliRun r = run_optiq("serve" + model + " --adapter /nonexistent/ad");
  expect_runtime_error(r, "serve", "--adapter /nonexistent/ad: ");
  EXPECT_FALSE(contains(r.out, "listening")) << r.out;
  r = run_optiq("serve" + model + " --adapter base=" + ad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "\"base\" is reserved")) << r.err;
  r = run_optiq("serve" + model + " --adapter " + ad + " --adapter " + ad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "another adapter is already named \"init\"")) << r.err;
  // /v1/models lists adapters beside the model, so an adapter may not take the model's id.
  r = run_optiq("serve" + model + " --model-id init --adapter " + ad);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(contains(r.err, "\"init\" is the served model's id")) << r.err;
}

// A child `optiq serve` with its stdout on a pipe.
class ServeProcess {
 public:
  explicit ServeProcess(const std::string& model) {
    int fds[2];
    if (::pipe(fds) != 0) return;
    const std::string bin = optiq_binary();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(fds[1], 1);
      ::close(fds[0]);
      ::close(fds[1]);
      ::execl(bin.c_str(), "optiq", "serve", "--model", model.c_str(), "--port", "0", "--threads", "1", nullptr);
      ::_exit(127);
    }
    ::close(fds[1]);
    out_ = fds[0];
  }
  ~ServeProcess() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) ::close(out_);
  }
  // Reads stdout until `re` matches what was read, or the deadline passes.
  bool wait_for(const std::regex& re, std::chrono::seconds limit, std::smatch* m = nullptr) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      std::smatch local;
      if (std::regex_search(text_, m ? *m : local, re)) return true;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return false;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left)) <= 0) return false;
      char buf[1024];
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return std::regex_search(text_, m ? *m : local, re);
      text_.append(buf, static_cast<size_t>(n));
    }
  }
  // SIGTERM, then the exit code (-1 if it did not exit within the limit).
  int stop(std::chrono::seconds limit) {
    ::kill(pid_, SIGTERM);
    const auto deadline = Clock::now() + limit;
    int status = 0;
    while (Clock::now() < deadline) {
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return -1;
  }
  bool started() const { return pid_ > 0 && out_ >= 0; }
  const std::string& text() const { return text_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool reaped_ = false;
  std::string text_;
};

TEST(CliServe, ServesOneRequestOnAFreePortAndStopsOnSigterm) {
  ServeProcess serve(fixture("dhara-tiny"));
  ASSERT_TRUE(serve.started());
  std::smatch m;
  ASSERT_TRUE(serve.wait_for(std::regex("listening on http://127\\.0\\.0\\.1:([0-9]+)"), std::chrono::seconds(30), &m))
      << serve.text();
  const int port = std::stoi(m[1].str());
  ASSERT_GT(port, 0);
  // "listening" comes only once the model has loaded: the loaded line is already there.
  EXPECT_TRUE(contains(serve.text(), "model dhara-tiny loaded")) << serve.text();
  EXPECT_LT(serve.text().find("model dhara-tiny loaded"), serve.text().find("listening on")) << serve.text();
  httplib::Client c("127.0.0.1", port);
  c.set_read_timeout(60, 0);
  auto models = c.Get("/v1/models");
  ASSERT_TRUE(models) << "no response";
  EXPECT_EQ(models->status, 200);
  EXPECT_TRUE(contains(models->body, "\"dhara-tiny\"")) << models->body;
  auto r = c.Post("/v1/completions", R"({"prompt": "The", "max_tokens": 3})", "application/json");
  ASSERT_TRUE(r) << "no response";
  EXPECT_EQ(r->status, 200) << r->body;
  EXPECT_TRUE(contains(r->body, "\"choices\"")) << r->body;
  EXPECT_EQ(serve.stop(std::chrono::seconds(20)), 0);
  EXPECT_TRUE(serve.wait_for(std::regex("optiq serve: stopped"), std::chrono::seconds(5))) << serve.text();
}

}  // namespace
}  // namespace optiq::test
