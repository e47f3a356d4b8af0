#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace optiq {

namespace fs = std::filesystem;
using json = nlohmann::json;

Result<std::shared_ptr<MappedFile>> MappedFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IOError(path + ": " + std::strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return Status::IOError(path + ": fstat: " + std::strerror(e));
  }
  auto mf = std::shared_ptr<MappedFile>(new MappedFile());
  mf->path_ = path;
  mf->size_ = static_cast<size_t>(st.st_size);
  if (mf->size_ > 0) {
    void* p = mmap(nullptr, mf->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      int e = errno;
      ::close(fd);
      return Status::IOError(path + ": mmap: " + std::strerror(e));
    }
    mf->data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);
  return mf;
}

std::shared_ptr<MappedFile> MappedFile::copy_of(std::span<const uint8_t> bytes, const std::string& name) {
  auto mf = std::shared_ptr<MappedFile>(new MappedFile());
  mf->path_ = name;
  mf->copy_.assign(bytes.begin(), bytes.end());
  mf->size_ = mf->copy_.size();
  mf->data_ = mf->copy_.empty() ? nullptr : mf->copy_.data();
  return mf;
}

void TensorStore::release_pages(const void* p, size_t n) const {
  const auto* b = static_cast<const uint8_t*>(p);
  for (const auto& f : files_) {
    const uint8_t* base = f->file().data();
    if (!base || b < base || b + n > base + f->file().size()) continue;
    const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(b) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(b) + n) / page * page;
    // A private read-only mapping is never written, so dropping its pages loses nothing.
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    return;
  }
}

MappedFile::~MappedFile() {
  if (data_ && copy_.empty()) munmap(const_cast<uint8_t*>(data_), size_);
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::open(const std::string& path) {
  OPTIQ_ASSIGN_OR_RETURN(auto mf, MappedFile::open(path));
  return parse(std::move(mf), path);
}

Result<std::unique_ptr<SafetensorsFile>> SafetensorsFile::parse(std::shared_ptr<MappedFile> file,
                                                                const std::string& name) {
  auto err = [&](const std::string& m) { return Status::Corruption(name + ": " + m); };
  const size_t size = file->size();
  if (size < 8) return err("file is " + std::to_string(size) + " bytes, shorter than the 8-byte header length");
  uint64_t hlen = 0;
  std::memcpy(&hlen, file->data(), 8);  // little-endian on every supported host
  if (hlen > size - 8)
    return err("header length " + std::to_string(hlen) + " runs beyond the file (" + std::to_string(size) +
               " bytes)");
  const char* hbeg = reinterpret_cast<const char*>(file->data() + 8);
  json header = json::parse(hbeg, hbeg + hlen, nullptr, /*allow_exceptions=*/false);
  if (header.is_discarded()) return err("header is not valid JSON");
  if (!header.is_object()) return err("header is not a JSON object");

  auto st = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  st->file_ = file;
  st->path_ = name;
  const uint8_t* data_begin = file->data() + 8 + hlen;
  const uint64_t data_size = size - 8 - hlen;
  std::vector<std::pair<uint64_t, std::pair<uint64_t, std::string>>> ranges;

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& key = it.key();
    const json& v = it.value();
    if (key == "__metadata__") {
      if (!v.is_object()) return err("__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) return err("__metadata__." + m.key() + " is not a string");
        st->metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    auto terr = [&](const std::string& m) { return err(key + ": " + m); };
    if (!v.is_object()) return terr("entry is not an object");
    auto dt = v.find("dtype");
    auto sh = v.find("shape");
    auto off = v.find("data_offsets");
    if (dt == v.end() || !dt->is_string()) return terr("missing or non-string dtype");
    if (sh == v.end() || !sh->is_array()) return terr("missing or non-array shape");
    if (off == v.end() || !off->is_array() || off->size() != 2) return terr("data_offsets must be [begin, end]");
    TensorView tv;
    const std::string dts = dt->get<std::string>();
    if (!dtype_from_name(dts, &tv.dtype)) return terr("unknown dtype \"" + dts + "\"");
    uint64_t numel = 1;
    for (const json& d : *sh) {
      if (!d.is_number_unsigned() && !(d.is_number_integer() && d.get<int64_t>() >= 0))
        return terr("shape has a non-integer or negative dimension");
      uint64_t dv = d.get<uint64_t>();
      // Each dimension too: after a zero one numel stays 0, and a dimension past 2^63 would turn
      // negative in TensorView::shape.
      if (dv > (uint64_t{1} << 48) || (dv != 0 && numel > (uint64_t{1} << 48) / dv))
        return terr("shape is implausibly large");
      numel *= dv;
      tv.shape.push_back(static_cast<int64_t>(dv));
    }
    for (const json& o : *off)
      if (!o.is_number_unsigned() && !(o.is_number_integer() && o.get<int64_t>() >= 0))
        return terr("data_offsets are not non-negative integers");
    uint64_t b = (*off)[0].get<uint64_t>(), e = (*off)[1].get<uint64_t>();
    if (b > e) return terr("data_offsets begin " + std::to_string(b) + " > end " + std::to_string(e));
    if (e > data_size)
      return terr("data_offsets end " + std::to_string(e) + " beyond the data block (" + std::to_string(data_size) +
                  " bytes)");
    uint64_t expect = numel * dtype_size(tv.dtype);
    if (e - b != expect)
      return terr("shape " + tv.shape_str() + " " + dts + " needs " + std::to_string(expect) +
                  " bytes, data_offsets span " + std::to_string(e - b));
    tv.data = data_begin + b;
    tv.nbytes = e - b;
    if (e > b) ranges.push_back({b, {e, key}});
    st->tensors_.emplace(key, std::move(tv));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first < ranges[i - 1].second.first)
      return err("tensors " + ranges[i - 1].second.second + " and " + ranges[i].second.second +
                 " have overlapping data ranges");
  return st;
}

Result<std::unique_ptr<TensorStore>> TensorStore::open_files(const std::vector<std::string>& paths) {
  auto store = std::unique_ptr<TensorStore>(new TensorStore());
  for (const auto& p : paths) {
    OPTIQ_ASSIGN_OR_RETURN(auto f, SafetensorsFile::open(p));
    for (auto& [k, v] : f->metadata()) store->metadata_[k] = v;
    for (auto& [name, tv] : f->tensors()) {
      auto [it, inserted] = store->index_.emplace(name, std::make_pair(&tv, f.get()));
      if (!inserted)
        return Status::Corruption(p + ": tensor " + name + " also present in " + it->second.second->path());
    }
    store->files_.push_back(std::move(f));
  }
  return store;
}

Result<std::unique_ptr<TensorStore>> TensorStore::open_dir(const std::string& dir) {
  std::vector<std::string> paths;
  fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(index, ec)) {
    std::ifstream in(index);
    json j = json::parse(in, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return Status::Corruption(index.string() + ": not valid JSON");
    auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) return Status::Corruption(index.string() + ": missing weight_map");
    std::vector<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string()) return Status::Corruption(index.string() + ": weight_map." + it.key());
      shards.push_back(it.value().get<std::string>());
    }
    std::sort(shards.begin(), shards.end());
    shards.erase(std::unique(shards.begin(), shards.end()), shards.end());
    for (auto& s : shards) {
      if (s.find('/') != std::string::npos || s.find("..") != std::string::npos)
        return Status::Corruption(index.string() + ": shard name \"" + s + "\" is not a plain file name");
      paths.push_back((fs::path(dir) / s).string());
    }
    OPTIQ_ASSIGN_OR_RETURN(auto store, open_files(paths));
    for (auto it = wm->begin(); it != wm->end(); ++it)
      if (!store->contains(it.key()))
        return Status::Corruption(index.string() + ": tensor " + it.key() + " listed but not found in " +
                                  it.value().get<std::string>());
    return store;
  }
  fs::path single = fs::path(dir) / "model.safetensors";
  if (fs::exists(single, ec)) {
    paths.push_back(single.string());
  } else {
    if (!fs::is_directory(dir, ec)) return Status::NotFound(dir + ": not a directory");
    for (auto& e : fs::directory_iterator(dir, ec))
      if (e.path().extension() == ".safetensors") paths.push_back(e.path().string());
    std::sort(paths.begin(), paths.end());
    if (paths.empty()) return Status::NotFound(dir + ": no *.safetensors files");
  }
  return open_files(paths);
}

Status TensorStore::set_override(const std::string& name, DType dtype, std::vector<int64_t> shape,
                                 std::shared_ptr<const std::vector<uint8_t>> bytes) {
  if (index_.find(name) == index_.end())
    return Status::NotFound("tensor override " + name + ": no such tensor in the checkpoint");
  if (dtype != DType::kF32 && dtype != DType::kBF16 && dtype != DType::kF16)
    return Status::InvalidArgument("tensor override " + name + ": dtype " + dtype_name(dtype) +
                                   " (expected F32, BF16 or F16)");
  Override o;
  o.view.dtype = dtype;
  o.view.shape = std::move(shape);
  const size_t need = static_cast<size_t>(o.view.numel()) * dtype_size(dtype);
  if (!bytes || bytes->size() != need)
    return Status::InvalidArgument("tensor override " + name + ": shape " + o.view.shape_str() + " needs " +
                                   std::to_string(need) + " bytes, got " + std::to_string(bytes ? bytes->size() : 0));
  o.view.data = bytes->data();
  o.view.nbytes = need;
  o.bytes = std::move(bytes);
  overrides_[name] = std::move(o);
  return Status::Ok();
}

const TensorView* TensorStore::find(const std::string& name) const {
  if (!overrides_.empty()) {
    auto o = overrides_.find(name);
    if (o != overrides_.end()) return &o->second.view;
  }
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second.first;
}

std::string TensorStore::file_of(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) {
    if (files_.size() == 1) return files_[0]->path();
    return files_.empty() ? std::string("<no files>") : fs::path(files_[0]->path()).parent_path().string();
  }
  return it->second.second->path();
}

std::vector<std::string> TensorStore::names() const {
  std::vector<std::string> out;
  for (auto& [k, v] : index_) out.push_back(k);
  return out;
}

size_t TensorStore::total_bytes() const {
  size_t n = 0;
  for (auto& [k, v] : index_) n += v.first->nbytes;
  return n;
}

namespace {
Status write_all(int fd, const void* p, size_t n, const std::string& path) {
  const char* c = static_cast<const char*>(p);
  while (n > 0) {
    ssize_t w = ::write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return Status::IOError(path + ": write: " + std::strerror(errno));
    }
    c += w;
    n -= static_cast<size_t>(w);
  }
  return Status::Ok();
}

// Runs `body(fd)` on a temp file next to `path`, then fsyncs and renames it into place.
template <typename Fn>
Status write_atomic(const std::string& path, Fn body) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Status::IOError(tmp + ": " + std::strerror(errno));
  Status s = body(fd, tmp);
  if (s.ok() && ::fsync(fd) != 0) s = Status::IOError(tmp + ": fsync: " + std::strerror(errno));
  if (::close(fd) != 0 && s.ok()) s = Status::IOError(tmp + ": close: " + std::strerror(errno));
  if (s.ok() && std::rename(tmp.c_str(), path.c_str()) != 0)
    s = Status::IOError(path + ": rename: " + std::strerror(errno));
  if (!s.ok()) ::unlink(tmp.c_str());
  return s;
}
}  // namespace

Status write_file_atomic(const std::string& path, const std::string& contents) {
  return write_atomic(path, [&](int fd, const std::string& tmp) {
    return write_all(fd, contents.data(), contents.size(), tmp);
  });
}

Status write_safetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<const TensorToWrite*> order;
  for (auto& t : tensors) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->name < b->name; });
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (auto* t : order) {
    uint64_t numel = 1;
    for (auto d : t->shape) numel *= static_cast<uint64_t>(d);
    if (numel * dtype_size(t->dtype) != t->nbytes)
      return Status::InvalidArgument(path + ": " + t->name + ": shape " + shape_to_string(t->shape) + " " +
                                     dtype_name(t->dtype) + " needs " + std::to_string(numel * dtype_size(t->dtype)) +
                                     " bytes, given " + std::to_string(t->nbytes));
    if (header.contains(t->name)) return Status::InvalidArgument(path + ": duplicate tensor " + t->name);
    header[t->name] = {{"dtype", dtype_name(t->dtype)}, {"shape", t->shape}, {"data_offsets", {offset, offset + t->nbytes}}};
    offset += t->nbytes;
  }
  std::string hs = header.dump();
  while ((hs.size() + 8) % 8 != 0) hs.push_back(' ');  // keep the data block 8-byte aligned
  uint64_t hlen = hs.size();
  return write_atomic(path, [&](int fd, const std::string& tmp) {
    OPTIQ_RETURN_IF_ERROR(write_all(fd, &hlen, 8, tmp));
    OPTIQ_RETURN_IF_ERROR(write_all(fd, hs.data(), hs.size(), tmp));
    for (auto* t : order) OPTIQ_RETURN_IF_ERROR(write_all(fd, t->data, t->nbytes, tmp));
    return Status::Ok();
  });
}

}  // namespace optiq
