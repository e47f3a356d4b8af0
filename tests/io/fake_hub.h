// A fake Hugging Face Hub on loopback for the io/hf_hub and CLI tests: the subset of the HTTP API that
// io/hf_hub.cpp uses (the revision info, /resolve/ with LFS redirects to a "CDN" path, Range), serving
// the dhara-tiny fixture as ORG/NAME, with switches for the failures the tests provoke.
#pragma once

#include <httplib.h>
#include <openssl/sha.h>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace optiq::test {

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline std::string sha256_hex(const std::string& bytes) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) out += std::string{hex[c >> 4], hex[c & 15]};
  return out;
}

class FakeHub {
 public:
  static constexpr const char* kSha = "0123456789abcdef0123456789abcdef01234567";
  std::string repo = "optiq-test/dhara-tiny";
  std::string token;                    // non-empty: requests without "Bearer <token>" get 401
  std::atomic<long> drop_first_get_at{-1};  // the first LFS GET sends this many bytes, then drops the connection
  std::atomic<bool> corrupt_next_get{false};   // the next LFS GET serves flipped bytes
  std::atomic<bool> corrupt_always{false};
  std::atomic<int> api_calls{0}, lfs_gets{0};
  std::mutex mu;
  std::vector<std::string> ranges;  // the Range header of every LFS GET ("" when none)

  // The fixture's files, plus two a model does not need (the download filter must skip them).
  FakeHub() {
    for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                          "tokenizer_config.json"})
      files_[f] = read_bytes(fixture(std::string("dhara-tiny/") + f));
    files_["README.md"] = "# not needed\n";
    files_["onnx/model.onnx"] = "not needed";
    install();
    port_ = server_.bind_to_any_port("127.0.0.1");
    // The socket listens from bind on: requests queue until the thread accepts them.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~FakeHub() {
    server_.stop();
    thread_.join();
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  const std::string& file(const std::string& name) { return files_.at(name); }

 private:
  static bool is_lfs(const std::string& name) { return name.size() > 12 && name.substr(name.size() - 12) == ".safetensors"; }

  bool authorized(const httplib::Request& req, httplib::Response& res) {
    if (token.empty() || req.get_header_value("Authorization") == "Bearer " + token) return true;
    res.status = 401;
    res.set_content("{\"error\":\"Invalid credentials\"}", "application/json");
    return false;
  }

  void install() {
    server_.Get(R"(/api/models/([^/]+)/([^/]+)/revision/([^/]+))", [this](const httplib::Request& req, httplib::Response& res) {
      ++api_calls;
      if (!authorized(req, res)) return;
      const std::string rev = req.matches[3];
      if (std::string(req.matches[1]) + "/" + std::string(req.matches[2]) != repo || (rev != "main" && rev != kSha)) {
        res.status = 404;
        return;
      }
      std::string siblings;
      for (const auto& [name, bytes] : files_) siblings += (siblings.empty() ? "" : ",") + ("{\"rfilename\":\"" + name + "\"}");
      res.set_content(std::string("{\"id\":\"") + repo + "\",\"sha\":\"" + kSha + "\",\"siblings\":[" + siblings + "]}",
                      "application/json");
    });
    // /ORG/NAME/resolve/SHA/FILE: small files inline with a git-style ETag, LFS files as a redirect
    // carrying X-Linked-Etag (sha256) and X-Linked-Size, as the Hub answers.
    server_.Get(R"(/([^/]+)/([^/]+)/resolve/([0-9a-f]{40})/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      if (!authorized(req, res)) return;
      auto it = files_.find(req.matches[4]);
      if (std::string(req.matches[1]) + "/" + std::string(req.matches[2]) != repo || req.matches[3] != kSha ||
          it == files_.end()) {
        res.status = 404;
        return;
      }
      res.set_header("X-Repo-Commit", kSha);
      if (is_lfs(it->first)) {
        res.status = 302;
        res.set_header("X-Linked-Etag", "\"" + sha256_hex(it->second) + "\"");
        res.set_header("X-Linked-Size", std::to_string(it->second.size()));
        res.set_header("Location", "/cdn/" + it->first);
        return;
      }
      res.set_header("ETag", "\"" + sha256_hex(it->second).substr(0, 40) + "\"");
      res.set_content(it->second, "application/octet-stream");
    });
    server_.Get(R"(/cdn/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
      auto it = files_.find(req.matches[1]);
      if (it == files_.end()) {
        res.status = 404;
        return;
      }
      ++lfs_gets;
      {
        std::lock_guard<std::mutex> lock(mu);
        ranges.push_back(req.get_header_value("Range"));
      }
      std::string body = it->second;
      if (corrupt_always || corrupt_next_get.exchange(false))
        for (size_t i = 0; i < body.size(); i += 4096) body[i] = static_cast<char>(body[i] ^ 0x5a);
      const long drop = drop_first_get_at.exchange(-1);
      if (drop >= 0 && req.ranges.empty()) {
        // Sends `drop` bytes of a body announced in full, then closes the connection.
        auto shared = std::make_shared<std::string>(std::move(body));
        res.set_content_provider(shared->size(), "application/octet-stream",
                                 [shared, drop](size_t offset, size_t, httplib::DataSink& sink) {
                                   if (offset < static_cast<size_t>(drop)) sink.write(shared->data(), drop);
                                   return false;
                                 });
        return;
      }
      res.set_content(body, "application/octet-stream");  // httplib answers a Range with 206
    });
  }

  std::map<std::string, std::string> files_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

// Sets an environment variable for the life of the object (the CLI tests' child processes inherit it).
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (had_) ::setenv(name_, old_.c_str(), 1);
    else ::unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

}  // namespace optiq::test
