// Status and Result<T>: errors as values with context (LevelDB style).
// Everything the outside world feeds in (files, configs, requests, flags) returns one of these;
// broken internal invariants use OPTIQ_CHECK instead.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace optiq {

class Status {
 public:
  enum class Code { kOk, kInvalidArgument, kNotFound, kCorruption, kUnsupported, kIOError, kInternal };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status InvalidArgument(std::string msg) { return Status(Code::kInvalidArgument, std::move(msg)); }
  static Status NotFound(std::string msg) { return Status(Code::kNotFound, std::move(msg)); }
  static Status Corruption(std::string msg) { return Status(Code::kCorruption, std::move(msg)); }
  static Status Unsupported(std::string msg) { return Status(Code::kUnsupported, std::move(msg)); }
  static Status IOError(std::string msg) { return Status(Code::kIOError, std::move(msg)); }
  static Status Internal(std::string msg) { return Status(Code::kInternal, std::move(msg)); }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return msg_; }
  std::string ToString() const;

  // Prefixes context ("file.safetensors: ") to the message; no-op on Ok.
  Status WithContext(const std::string& ctx) const {
    if (ok()) return *this;
    return Status(code_, ctx + ": " + msg_);
  }

 private:
  Status(Code c, std::string m) : code_(c), msg_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string msg_;
};

inline std::string Status::ToString() const {
  const char* kind = "OK";
  switch (code_) {
    case Code::kOk: return "OK";
    case Code::kInvalidArgument: kind = "Invalid argument"; break;
    case Code::kNotFound: kind = "Not found"; break;
    case Code::kCorruption: kind = "Corruption"; break;
    case Code::kUnsupported: kind = "Unsupported"; break;
    case Code::kIOError: kind = "IO error"; break;
    case Code::kInternal: kind = "Internal"; break;
  }
  return std::string(kind) + ": " + msg_;
}

// Holds either a value or a non-Ok Status.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}           // NOLINT(implicit)
  Result(Status status) : status_(std::move(status)) {    // NOLINT(implicit)
    if (status_.ok()) status_ = Status::Internal("Result constructed from Ok status without a value");
  }
  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

[[noreturn]] inline void check_failed(const char* file, int line, const char* expr, const std::string& msg) {
  std::fprintf(stderr, "%s:%d: OPTIQ_CHECK(%s) failed %s\n", file, line, expr, msg.c_str());
  std::abort();
}

}  // namespace optiq

// For our own bugs only: prints the expression and aborts.
#define OPTIQ_CHECK(cond)                                                       \
  do {                                                                          \
    if (!(cond)) ::optiq::check_failed(__FILE__, __LINE__, #cond, std::string()); \
  } while (0)
#define OPTIQ_CHECK_MSG(cond, msg)                                          \
  do {                                                                      \
    if (!(cond)) ::optiq::check_failed(__FILE__, __LINE__, #cond, (msg));   \
  } while (0)

#define OPTIQ_RETURN_IF_ERROR(expr)           \
  do {                                        \
    ::optiq::Status _st = (expr);             \
    if (!_st.ok()) return _st;                \
  } while (0)

#define OPTIQ_CONCAT_INNER(a, b) a##b
#define OPTIQ_CONCAT(a, b) OPTIQ_CONCAT_INNER(a, b)
#define OPTIQ_ASSIGN_OR_RETURN(lhs, expr)                              \
  auto OPTIQ_CONCAT(_res_, __LINE__) = (expr);                         \
  if (!OPTIQ_CONCAT(_res_, __LINE__).ok())                             \
    return OPTIQ_CONCAT(_res_, __LINE__).status();                     \
  lhs = std::move(OPTIQ_CONCAT(_res_, __LINE__)).value()
