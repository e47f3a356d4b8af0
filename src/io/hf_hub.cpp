#include "io/hf_hub.h"

#include <fcntl.h>
#include <httplib.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace optiq {

namespace fs = std::filesystem;
using Json = nlohmann::json;

namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

bool is_hex(const std::string& s, size_t n) {
  return s.size() == n && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit((unsigned char)c); });
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool valid_name(const std::string& s) {
  if (s.empty() || s.size() > 96 || s[0] == '.' || s[0] == '-' || s.find("..") != std::string::npos) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return std::isalnum((unsigned char)c) || c == '.' || c == '_' || c == '-'; });
}

// Percent-encodes everything but unreserved characters (and '/' when `keep_slash`): a revision such as
// refs/pr/1 is one path segment of the API URL, a file path keeps its slashes.
std::string url_encode(const std::string& s, bool keep_slash) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

// "scheme://host[:port]" and the path after it.
struct Url {
  std::string origin, path;
};

Result<Url> split_url(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) return Status::InvalidArgument("not an absolute URL: " + url);
  const size_t slash = url.find('/', scheme + 3);
  if (slash == std::string::npos) return Url{url, "/"};
  return Url{url.substr(0, slash), url.substr(slash)};
}

std::unique_ptr<httplib::Client> make_client(const std::string& origin, const HubOptions& o) {
  auto c = std::make_unique<httplib::Client>(origin);
  c->set_connection_timeout(o.timeout_s, 0);
  c->set_read_timeout(o.timeout_s, 0);
  c->set_write_timeout(o.timeout_s, 0);
  c->set_follow_location(false);  // redirects are followed by hand: the first hop carries the metadata
  return c;
}

// The bearer token goes to the endpoint's own host only, never to the CDN a download redirects to.
httplib::Headers auth_headers(const std::string& origin, const HubOptions& o) {
  // identity: byte ranges and sizes must count the file's own bytes, not a gzip stream's.
  httplib::Headers h{{"User-Agent", "optiq"}, {"Accept-Encoding", "identity"}};
  auto ep = split_url(o.endpoint);
  if (!o.token.empty() && ep.ok() && ep->origin == origin) h.emplace("Authorization", "Bearer " + o.token);
  return h;
}

std::string no_ssl_hint(const std::string& origin) {
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
  (void)origin;
  return "";
#else
  return origin.rfind("https://", 0) == 0 ? " (this optiq was built without HTTPS support: use an http:// HF_ENDPOINT mirror)"
                                          : "";
#endif
}

// A clear Status for an HTTP answer that is not a success.
Status http_status(int code, const std::string& repo, const std::string& what, const std::string& url) {
  if (code == 401 || code == 403)
    return Status::InvalidArgument(
        repo + ": " + what + " was refused (HTTP " + std::to_string(code) + " from " + url +
        "): the repository is private or gated (or does not exist), and a token with access to it is needed: set "
        "HF_TOKEN or write it to $HF_HOME/token (huggingface-cli login)");
  if (code == 404)
    return Status::NotFound(repo + ": " + what + " not found (HTTP 404 from " + url +
                            "); check the repo id and revision (no local directory of that name exists either)");
  return Status::IOError(repo + ": " + what + ": HTTP " + std::to_string(code) + " from " + url);
}

Status transport_error(httplib::Error e, const std::string& repo, const std::string& url) {
  return Status::IOError(repo + ": cannot reach " + url + " (HTTP client error: " + httplib::to_string(e) + ")" + no_ssl_hint(url) +
                         "; with a complete cache, --offline or HF_HUB_OFFLINE=1 skips the network");
}

Result<std::string> read_file_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Status::NotFound(p.string() + ": cannot open");
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!s.empty() && std::isspace((unsigned char)s.back())) s.pop_back();
  return s;
}

Status write_file_text(const fs::path& p, const std::string& text) {
  std::error_code ec;
  fs::create_directories(p.parent_path(), ec);
  const fs::path tmp = p.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out) return Status::IOError(tmp.string() + ": cannot write");
  }
  fs::rename(tmp, p, ec);
  if (ec) return Status::IOError(p.string() + ": " + ec.message());
  return Status::Ok();
}

Result<std::string> sha256_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) return Status::IOError(p.string() + ": cannot open");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) return Status::Internal("sha256: EVP init failed");
  std::vector<char> buf(1 << 20);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx.get(), buf.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx.get(), md, &n);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < n; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 15];
  }
  return out;
}

// "W/\"abc\"" → "abc".
std::string normalize_etag(std::string e) {
  if (e.rfind("W/", 0) == 0) e = e.substr(2);
  if (e.size() >= 2 && e.front() == '"' && e.back() == '"') e = e.substr(1, e.size() - 2);
  return e;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "kB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) b /= 1000, ++u;
  char s[32];
  std::snprintf(s, sizeof s, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return s;
}

// Progress of one file: a redrawn bar on a TTY (name, percent, bytes, rate, ETA), else nothing until the
// one-line summary at the end, so logs stay readable.
class ProgressBar {
 public:
  ProgressBar(std::FILE* f, std::string name, uint64_t total, uint64_t start)
      : f_(f), name_(std::move(name)), total_(total), start_bytes_(start), done_(start),
        tty_(f && ::isatty(::fileno(f))), t0_(Clock::now()), last_(t0_) {}
  void update(uint64_t done) {
    done_ = done;
    if (!tty_) return;
    const auto now = Clock::now();
    if (now - last_ < std::chrono::milliseconds(100) && done_ < total_) return;
    last_ = now;
    const double rate = this->rate();
    char eta[32] = "--:--";
    if (rate > 0 && total_ > done_) {
      const long s = static_cast<long>((total_ - done_) / rate);
      std::snprintf(eta, sizeof eta, "%ld:%02ld", s / 60, s % 60);
    }
    const int pct = total_ ? static_cast<int>(100.0 * done_ / total_) : 0;
    std::fprintf(f_, "\r%-32.32s %3d%% %10s / %-10s %10s/s  ETA %s\033[K", name_.c_str(), pct,
                 human_bytes(double(done_)).c_str(), human_bytes(double(total_)).c_str(), human_bytes(rate).c_str(), eta);
    std::fflush(f_);
  }
  void finish() {
    if (!f_) return;
    const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    std::string line = "optiq: downloaded " + name_ + " (" + human_bytes(double(done_ - start_bytes_)) + " in ";
    char t[32];
    std::snprintf(t, sizeof t, "%.1f s, ", secs);
    line += t + human_bytes(rate()) + "/s";
    if (start_bytes_) line += ", resumed at " + human_bytes(double(start_bytes_));
    line += ")";
    std::fprintf(f_, "%s%s\n", tty_ ? "\r\033[K" : "", line.c_str());
    std::fflush(f_);
  }

 private:
  using Clock = std::chrono::steady_clock;
  double rate() const {
    const double secs = std::chrono::duration<double>(Clock::now() - t0_).count();
    return secs > 0 ? double(done_ - start_bytes_) / secs : 0;
  }
  std::FILE* f_;
  std::string name_;
  uint64_t total_, start_bytes_, done_;
  bool tty_;
  Clock::time_point t0_, last_;
};

// An exclusive lock on `path` held for the object's life: two processes fetching one blob take turns.
class FileLock {
 public:
  explicit FileLock(const fs::path& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ >= 0) ::flock(fd_, LOCK_EX);
  }
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);  // closing releases the lock
  }
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

 private:
  int fd_;
};

struct Repo {
  HubRepoId id;
  fs::path dir;  // <cache>/models--ORG--NAME
  const HubOptions* opts;
  std::string resolve_url(const std::string& sha, const std::string& file) const {
    return opts->endpoint + "/" + id.repo() + "/resolve/" + sha + "/" + url_encode(file, true);
  }
};

struct FileMeta {
  std::string etag, url;  // url: where the bytes are (the redirect's target for LFS files)
  uint64_t size = 0;      // 0 when the server did not say
};

// HEAD .../resolve/SHA/FILE without following redirects: the first hop names the blob (X-Linked-Etag
// for LFS files, ETag otherwise) and its size; relative redirects (a renamed repo) are followed.
Result<FileMeta> head_file(const Repo& r, const std::string& sha, const std::string& file) {
  std::string url = r.resolve_url(sha, file);
  for (int hop = 0; hop < 5; ++hop) {
    OPTIQ_ASSIGN_OR_RETURN(Url u, split_url(url));
    auto cli = make_client(u.origin, *r.opts);
    auto res = cli->Head(u.path, auth_headers(u.origin, *r.opts));
    if (!res) return transport_error(res.error(), r.id.repo(), url);
    const int code = res->status;
    FileMeta m;
    m.etag = normalize_etag(res->has_header("X-Linked-Etag") ? res->get_header_value("X-Linked-Etag")
                                                              : res->get_header_value("ETag"));
    const std::string size = res->has_header("X-Linked-Size") ? res->get_header_value("X-Linked-Size")
                                                               : res->get_header_value("Content-Length");
    m.size = std::strtoull(size.c_str(), nullptr, 10);
    if (code >= 300 && code < 400) {
      std::string loc = res->get_header_value("Location");
      if (loc.empty()) return Status::IOError(r.id.repo() + ": " + file + ": redirect without Location from " + url);
      const bool relative = loc[0] == '/';
      if (relative) loc = u.origin + loc;
      if (relative && !res->has_header("X-Linked-Etag")) {
        url = loc;
        continue;
      }
      m.url = loc;
    } else if (code == 200) {
      m.url = url;
    } else {
      return http_status(code, r.id.repo(), file, url);
    }
    if (m.etag.empty()) return Status::IOError(r.id.repo() + ": " + file + ": no ETag in the answer from " + url);
    if (m.etag.find('/') != std::string::npos || m.etag.find("..") != std::string::npos)
      return Status::Corruption(r.id.repo() + ": " + file + ": unusable ETag '" + m.etag + "' from " + url);
    return m;
  }
  return Status::IOError(r.id.repo() + ": " + file + ": too many redirects from " + r.resolve_url(sha, file));
}

// One GET of `m.url` into `part`, appending from its current size (Range) and following redirects.
// Returns the bytes `part` holds afterwards; a transport error keeps them for the next attempt.
Result<uint64_t> get_into(const Repo& r, const FileMeta& m, const fs::path& part, const std::string& file,
                          ProgressBar& bar) {
  std::error_code ec;
  uint64_t have = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
  std::string url = m.url;
  for (int hop = 0; hop < 5; ++hop) {
    OPTIQ_ASSIGN_OR_RETURN(Url u, split_url(url));
    auto cli = make_client(u.origin, *r.opts);
    httplib::Headers h = auth_headers(u.origin, *r.opts);
    if (have > 0) h.emplace("Range", "bytes=" + std::to_string(have) + "-");
    int code = 0;
    std::string location;
    std::ofstream out;
    Status write_error;
    auto res = cli->Get(
        u.path, h,
        [&](const httplib::Response& resp) {
          code = resp.status;
          if (code >= 300 && code < 400) location = resp.get_header_value("Location");
          if (code == 200) have = 0;  // the server ignored Range: start over
          if (code != 200 && code != 206) return false;
          out.open(part, code == 206 ? std::ios::binary | std::ios::app : std::ios::binary | std::ios::trunc);
          if (!out) write_error = Status::IOError(part.string() + ": cannot open for writing");
          return out.good();
        },
        [&](const char* data, size_t n) {
          out.write(data, static_cast<std::streamsize>(n));
          if (!out) {
            write_error = Status::IOError(part.string() + ": write failed (disk full?)");
            return false;
          }
          have += n;
          bar.update(have);
          return true;
        });
    out.close();
    if (!write_error.ok()) return write_error;
    if (code >= 300 && code < 400) {
      if (location.empty()) return Status::IOError(r.id.repo() + ": " + file + ": redirect without Location from " + url);
      url = location[0] == '/' ? u.origin + location : location;
      continue;
    }
    if (code == 416 && m.size && have == m.size) return have;  // already complete
    if (code == 416) {  // the partial file is not a prefix the server knows: start over
      fs::remove(part, ec);
      have = 0;
      continue;
    }
    if (code != 0 && code != 200 && code != 206) return http_status(code, r.id.repo(), file, url);
    if (!res) {
      return Status::IOError(r.id.repo() + ": download of " + file + " from " + url + " interrupted after " +
                             std::to_string(have) + " bytes (" + httplib::to_string(res.error()) + ")" +
                             no_ssl_hint(url) + "; the partial file " + part.string() + " is resumed by the next run");
    }
    return have;
  }
  return Status::IOError(r.id.repo() + ": " + file + ": too many redirects from " + m.url);
}

// blobs/<etag> complete and verified: resumes blobs/<etag>.incomplete, retries dropped connections,
// and re-fetches a blob whose sha256 does not match its etag once before giving up.
Status fetch_blob(const Repo& r, const FileMeta& m, const std::string& file, const fs::path& blob) {
  const fs::path part = blob.string() + ".incomplete";
  std::error_code ec;
  for (int fetch = 0; fetch < 2; ++fetch) {
    const uint64_t start = fs::exists(part, ec) ? fs::file_size(part, ec) : 0;
    ProgressBar bar(r.opts->progress, file, m.size, start);
    Result<uint64_t> got = Status::Internal("no attempt");
    for (int attempt = 0; attempt <= std::max(0, r.opts->retries); ++attempt) {
      got = get_into(r, m, part, file, bar);
      if (got.ok() || got.status().code() != Status::Code::kIOError || !fs::exists(part, ec)) break;
    }
    if (!got.ok()) return got.status();
    if (m.size && *got != m.size) {
      fs::remove(part, ec);
      return Status::Corruption(r.id.repo() + ": " + file + ": got " + std::to_string(*got) + " bytes, the Hub said " +
                                std::to_string(m.size) + " (" + m.url + ")");
    }
    bar.finish();
    if (is_hex(m.etag, 64)) {  // LFS files: the etag is the sha256 of the contents
      OPTIQ_ASSIGN_OR_RETURN(std::string sum, sha256_file(part));
      if (sum != m.etag) {
        fs::remove(part, ec);
        if (fetch == 0) {
          if (r.opts->progress)
            std::fprintf(r.opts->progress, "optiq: %s: sha256 mismatch, downloading it again\n", file.c_str());
          continue;
        }
        return Status::Corruption(r.id.repo() + ": " + file + ": sha256 " + sum + " does not match the Hub's " + m.etag +
                                  " (downloaded twice from " + m.url + "); the mirror or the network corrupts it");
      }
    }
    fs::rename(part, blob, ec);
    if (ec) return Status::IOError(blob.string() + ": " + ec.message());
    return Status::Ok();
  }
  return Status::Internal("unreachable");
}

// snapshots/<sha>/<file> → ../../blobs/<etag> (relative, as huggingface_hub links them).
Status link_snapshot(const Repo& r, const std::string& sha, const std::string& file, const std::string& etag) {
  const fs::path link = r.dir / "snapshots" / sha / file;
  std::error_code ec;
  fs::create_directories(link.parent_path(), ec);
  if (ec) return Status::IOError(link.parent_path().string() + ": " + ec.message());
  const fs::path target = fs::relative(r.dir / "blobs" / etag, link.parent_path(), ec);
  if (ec) return Status::IOError(link.string() + ": " + ec.message());
  fs::remove(link, ec);
  fs::create_symlink(target, link, ec);
  if (ec) return Status::IOError(link.string() + ": cannot link to " + target.string() + ": " + ec.message());
  return Status::Ok();
}

Status download_file(const Repo& r, const std::string& sha, const std::string& file) {
  OPTIQ_ASSIGN_OR_RETURN(FileMeta m, head_file(r, sha, file));
  const fs::path blobs = r.dir / "blobs";
  std::error_code ec;
  fs::create_directories(blobs, ec);
  if (ec) return Status::IOError(blobs.string() + ": " + ec.message());
  const fs::path blob = blobs / m.etag;
  {
    FileLock lock(blob.string() + ".lock");
    if (!fs::exists(blob, ec)) OPTIQ_RETURN_IF_ERROR(fetch_blob(r, m, file, blob));
  }
  fs::remove(blob.string() + ".lock", ec);
  return link_snapshot(r, sha, file, m.etag);
}

bool is_offline_env() {
  std::string v = env("HF_HUB_OFFLINE");
  std::transform(v.begin(), v.end(), v.begin(), [](unsigned char c) { return std::tolower(c); });
  return v == "1" || v == "true" || v == "yes" || v == "on";
}

fs::path repo_dir(const HubRepoId& id, const HubOptions& o) {
  return fs::path(o.cache_dir) / ("models--" + id.org + "--" + id.name);
}

// The files of a complete snapshot that are missing or dangle (a symlink whose blob is gone): config.json
// (or adapter_config.json), and the shards the index lists, or else at least one *.safetensors.
std::vector<std::string> missing_files(const fs::path& snap) {
  std::error_code ec;
  std::vector<std::string> missing;
  auto present = [&](const std::string& f) { return fs::is_regular_file(snap / f, ec); };  // follows links
  if (!present("config.json") && !present("adapter_config.json")) missing.push_back("config.json");
  if (present("model.safetensors.index.json")) {
    auto text = read_file_text(snap / "model.safetensors.index.json");
    Json idx = text.ok() ? Json::parse(*text, nullptr, false) : Json();
    if (!idx.is_object() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
      missing.push_back("model.safetensors.index.json (unreadable)");
    } else {
      std::vector<std::string> shards;
      for (auto& [k, v] : idx["weight_map"].items())
        if (v.is_string()) shards.push_back(v.get<std::string>());
      std::sort(shards.begin(), shards.end());
      shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
      for (const auto& s : shards)
        if (!present(s)) missing.push_back(s);
    }
  } else {
    bool any = false;
    for (const auto& e : fs::directory_iterator(snap, ec))
      any |= ends_with(e.path().filename().string(), ".safetensors") && fs::is_regular_file(e.path(), ec);
    if (!any) missing.push_back("*.safetensors");
  }
  for (const auto& e : fs::recursive_directory_iterator(snap, ec))
    if (e.is_symlink(ec) && !fs::exists(e.path(), ec))
      missing.push_back(fs::relative(e.path(), snap, ec).string() + " (its blob is gone)");
  return missing;
}

}  // namespace

Result<HubRepoId> parse_hub_repo_id(const std::string& s) {
  HubRepoId id;
  std::string path = s;
  if (const size_t at = s.find('@'); at != std::string::npos) {
    id.revision = s.substr(at + 1);
    path = s.substr(0, at);
    if (id.revision.empty() || id.revision.find("..") != std::string::npos || id.revision[0] == '/')
      return Status::InvalidArgument("'" + s + "': empty or invalid revision after '@'");
  }
  const size_t slash = path.find('/');
  if (slash == std::string::npos || path.find('/', slash + 1) != std::string::npos)
    return Status::InvalidArgument("'" + s + "' is not a Hugging Face id ORG/NAME[@REVISION]");
  id.org = path.substr(0, slash);
  id.name = path.substr(slash + 1);
  if (!valid_name(id.org) || !valid_name(id.name))
    return Status::InvalidArgument("'" + s + "' is not a Hugging Face id ORG/NAME[@REVISION]");
  return id;
}

HubOptions hub_options_from_env() {
  HubOptions o;
  std::string home = env("HF_HOME");
  if (home.empty()) {
    const std::string xdg = env("XDG_CACHE_HOME");
    home = !xdg.empty() ? xdg + "/huggingface" : env("HOME") + "/.cache/huggingface";
  }
  o.cache_dir = env("HF_HUB_CACHE");
  if (o.cache_dir.empty()) o.cache_dir = home + "/hub";
  o.endpoint = env("HF_ENDPOINT");
  if (o.endpoint.empty()) o.endpoint = "https://huggingface.co";
  while (!o.endpoint.empty() && o.endpoint.back() == '/') o.endpoint.pop_back();
  o.token = env("HF_TOKEN");
  if (o.token.empty()) {
    std::string path = env("HF_TOKEN_PATH");
    if (path.empty()) path = home + "/token";
    if (auto t = read_file_text(path); t.ok()) o.token = *t;
  }
  o.offline = is_offline_env();
  return o;
}

bool hub_file_wanted(const std::string& f) {
  if (f.find('/') != std::string::npos) return false;  // subfolders hold other formats (onnx/, original/)
  static const char* exact[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                                "special_tokens_map.json", "chat_template.jinja", "chat_template.json",
                                "preprocessor_config.json", "processor_config.json", "adapter_config.json"};
  for (const char* e : exact)
    if (f == e) return true;
  return ends_with(f, ".safetensors") || ends_with(f, ".safetensors.index.json");
}

Result<std::string> cached_snapshot(const HubRepoId& id, const HubOptions& opts) {
  const fs::path dir = repo_dir(id, opts);
  std::string sha = id.revision;
  if (!is_hex(sha, 40)) {
    auto ref = read_file_text(dir / "refs" / id.revision);
    if (!ref.ok())
      return Status::NotFound(id.repo() + "@" + id.revision + " is not in the Hugging Face cache (no " +
                              (dir / "refs" / id.revision).string() + ")");
    sha = *ref;
  }
  const fs::path snap = dir / "snapshots" / sha;
  std::error_code ec;
  if (!fs::is_directory(snap, ec))
    return Status::NotFound(id.repo() + "@" + id.revision + ": snapshot " + snap.string() + " is not in the cache");
  const std::vector<std::string> missing = missing_files(snap);
  if (!missing.empty()) {
    std::string list;
    for (const auto& m : missing) list += (list.empty() ? "" : ", ") + m;
    return Status::NotFound(id.repo() + "@" + id.revision + ": the cached snapshot " + snap.string() +
                            " is incomplete, missing " + list);
  }
  return snap.string();
}

Result<std::string> resolve_model_path(const std::string& model, const HubOptions& opts) {
  std::error_code ec;
  if (fs::is_directory(model, ec)) return model;  // a local directory always wins over an id
  auto parsed = parse_hub_repo_id(model);
  if (!parsed.ok()) return model;  // a path: the loader reports it
  const HubRepoId& id = *parsed;
  const bool offline = opts.offline || is_offline_env();
  if (offline) {
    auto snap = cached_snapshot(id, opts);
    if (!snap.ok())
      return snap.status().WithContext("offline (--offline or HF_HUB_OFFLINE=1), nothing is downloaded, and '" + model +
                                       "' is no local directory");
    return snap;
  }
  Repo r{id, repo_dir(id, opts), &opts};
  // A commit sha whose snapshot is complete needs no network at all.
  if (is_hex(id.revision, 40))
    if (auto snap = cached_snapshot(id, opts); snap.ok()) return snap;

  const std::string api_url = opts.endpoint + "/api/models/" + id.repo() + "/revision/" + url_encode(id.revision, false);
  OPTIQ_ASSIGN_OR_RETURN(Url u, split_url(api_url));
  auto cli = make_client(u.origin, opts);
  cli->set_follow_location(true);  // the API may redirect a renamed repo
  auto res = cli->Get(u.path, auth_headers(u.origin, opts));
  if (!res) {
    // No network: a complete cache still serves, as huggingface_hub does.
    if (auto snap = cached_snapshot(id, opts); snap.ok()) {
      if (opts.progress)
        std::fprintf(opts.progress, "optiq: %s unreachable (%s), using the cached %s\n", opts.endpoint.c_str(),
                     httplib::to_string(res.error()).c_str(), snap->c_str());
      return snap;
    }
    return transport_error(res.error(), id.repo(), api_url);
  }
  if (res->status != 200) return http_status(res->status, id.repo(), "revision " + id.revision, api_url);
  Json info = Json::parse(res->body, nullptr, false);
  if (info.is_discarded() || !info.contains("sha") || !info["sha"].is_string() || !is_hex(info["sha"].get<std::string>(), 40))
    return Status::Corruption(id.repo() + ": " + api_url + ": the answer has no 40-hex \"sha\"");
  const std::string sha = info["sha"].get<std::string>();
  if (sha != id.revision) OPTIQ_RETURN_IF_ERROR(write_file_text(r.dir / "refs" / id.revision, sha));

  std::vector<std::string> files;
  if (info.contains("siblings") && info["siblings"].is_array())
    for (const auto& s : info["siblings"])
      if (s.is_object() && s.contains("rfilename") && s["rfilename"].is_string() &&
          hub_file_wanted(s["rfilename"].get<std::string>()))
        files.push_back(s["rfilename"].get<std::string>());
  const bool has_config = std::count(files.begin(), files.end(), "config.json") ||
                          std::count(files.begin(), files.end(), "adapter_config.json");
  if (!has_config)
    return Status::NotFound(id.repo() + "@" + id.revision + ": no config.json in the repository (" + api_url +
                            "): not a model optiq can load");
  const fs::path snap = r.dir / "snapshots" / sha;
  for (const std::string& f : files) {
    if (fs::is_regular_file(snap / f, ec)) continue;  // present (a symlink to an existing blob)
    OPTIQ_RETURN_IF_ERROR(download_file(r, sha, f));
  }
  return snap.string();
}

}  // namespace optiq
