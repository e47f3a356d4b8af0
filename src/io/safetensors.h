// Safetensors reading (memory-mapped, one file or sharded) and atomic writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
// then the data block; offsets are relative to the start of the data block.
#pragma once

#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor.h"

namespace optiq {

// A read-only memory mapping of a whole file. Unmapped on destruction.
class MappedFile {
 public:
  static Result<std::shared_ptr<MappedFile>> open(const std::string& path);
  // A heap copy of `bytes` standing in for a file called `name` (tests and fuzzers parse bytes
  // without touching the disk). Not a mapping: TensorStore::release_pages never sees one.
  static std::shared_ptr<MappedFile> copy_of(std::span<const uint8_t> bytes, const std::string& name);
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::vector<uint8_t> copy_;  // copy_of's bytes (data_ points here); empty for a mapping
};

// One safetensors file. Tensor views point into the mapping and live as long as this object.
class SafetensorsFile {
 public:
  // Validates the header completely: length, JSON, dtypes, shapes vs byte sizes, offsets in range
  // and non-overlapping. Errors name the file and the tensor.
  static Result<std::unique_ptr<SafetensorsFile>> open(const std::string& path);
  // Same validation over bytes already in memory (MappedFile::copy_of for tests and fuzzers);
  // `name` labels errors.
  static Result<std::unique_ptr<SafetensorsFile>> parse(std::shared_ptr<MappedFile> file, const std::string& name);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  const MappedFile& file() const { return *file_; }

 private:
  std::shared_ptr<MappedFile> file_;
  std::string path_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards listed in
// model.safetensors.index.json, or every *.safetensors file in the directory.
class TensorStore {
 public:
  static Result<std::unique_ptr<TensorStore>> open_dir(const std::string& dir);
  static Result<std::unique_ptr<TensorStore>> open_files(const std::vector<std::string>& paths);

  const TensorView* find(const std::string& name) const;
  bool contains(const std::string& name) const { return find(name) != nullptr; }
  // Which file a tensor came from (for error messages).
  std::string file_of(const std::string& name) const;
  std::vector<std::string> names() const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Total bytes of all tensors.
  size_t total_bytes() const;

  // Replaces tensor `name` (which must exist in the files) with caller-supplied bytes for every
  // later lookup: LoadOptions::tensor_overrides (fake-quantized weights for sensitivity runs).
  // `bytes` must hold numel(shape)·dtype_size(dtype) bytes; dtype F32, BF16 or F16.
  Status set_override(const std::string& name, DType dtype, std::vector<int64_t> shape,
                      std::shared_ptr<const std::vector<uint8_t>> bytes);
  bool is_override(const std::string& name) const { return overrides_.count(name) != 0; }

  // Drops this process's mapping of the whole pages inside [p, p + n) when the range lies in one of
  // the files (else does nothing): for tensors a model has copied (packed weights), so they stop
  // counting in its resident memory. The bytes stay valid; a later read maps them again from the
  // page cache.
  void release_pages(const void* p, size_t n) const;

 private:
  struct Override {
    TensorView view;
    std::shared_ptr<const std::vector<uint8_t>> bytes;
  };
  std::map<std::string, Override> overrides_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, std::pair<const TensorView*, const SafetensorsFile*>> index_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: bytes are copied from `data` (nbytes must equal numel * dtype size).
struct TensorToWrite {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const void* data;
  size_t nbytes;
};

// Writes a safetensors file atomically (temp file in the same directory, fsync, rename).
// Tensors are laid out in name order, as the Python writer does.
Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata = {});

// Writes `contents` to `path` atomically (temp file + rename).
Status write_file_atomic(const std::string& path, const std::string& contents);

}  // namespace optiq
