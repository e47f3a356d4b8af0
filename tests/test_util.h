// Shared helpers for tests: fixture paths and small utilities.
#pragma once

#include <filesystem>
#include <string>
#include <unistd.h>

namespace optiq::test {

inline std::string shared_dir() { return OPTIQ_SHARED_DIR; }
inline std::string fixture(const std::string& rel) { return shared_dir() + "/fixtures/" + rel; }
inline std::string repo_dir() { return OPTIQ_SOURCE_DIR; }
// The bundled calibration mix `optiq convert` defaults to.
inline std::string default_calibration_mix() { return repo_dir() + "/data/calibration/default.jsonl"; }

// A fresh empty temporary directory, removed by the destructor.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    path = std::filesystem::temp_directory_path() /
           ("optiq_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter()++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string str() const { return path.string(); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

}  // namespace optiq::test
