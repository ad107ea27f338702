#include "storage/faulty_file_system.h"

#include <algorithm>

namespace synod::storage {

using base::Errc;
using base::Error;
using base::Result;
using base::Status;

struct FaultyFileSystem::State {
  struct File {
    std::string data;
    uint64_t synced = 0;       // bytes known durable
    bool name_durable = false;  // creation made durable by sync_dir
  };

  explicit State(uint64_t seed) : rng(seed) {}

  mutable std::mutex mutex;
  std::map<std::string, File> files;
  // Removed, but the removal is not durable until its directory is synced:
  // a crash brings these back with their synced bytes.
  std::map<std::string, File> removed;
  std::map<std::string, bool> dirs;  // dir → exists
  base::Rng rng;
  uint64_t generation = 0;  // bumped by crash(); older handles are dead
  int failing_syncs = 0;
  uint64_t syncs = 0;
  std::optional<uint64_t> capacity;

  uint64_t used() const {
    uint64_t total = 0;
    for (const auto& [path, file] : files) total += file.data.size();
    return total;
  }
  bool take_sync_failure() {
    if (failing_syncs == 0) return false;
    --failing_syncs;
    return true;
  }
};

namespace {

using State = FaultyFileSystem::State;

// "/a/b/" and "/a/b" name the same directory.
std::string normalize(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Error stale_handle(const std::string& path) {
  return Error(Errc::kIo, path + ": file handle from before a simulated crash");
}

Error missing(const std::string& path) { return Error(Errc::kIo, path + ": no such file"); }

class FaultyWritableFile final : public WritableFile {
 public:
  FaultyWritableFile(std::shared_ptr<State> state, std::string path, uint64_t generation)
      : state_(std::move(state)), path_(std::move(path)), generation_(generation) {}

  Status append(std::string_view data) override {
    std::lock_guard lock(state_->mutex);
    State::File* file = live_file();
    if (file == nullptr) return stale_handle(path_);
    if (state_->capacity) {
      const uint64_t used = state_->used();
      const uint64_t room = used >= *state_->capacity ? 0 : *state_->capacity - used;
      if (data.size() > room) {
        file->data.append(data.substr(0, room));
        return Error(Errc::kNoSpace, "write " + path_ + ": no space left on device (capacity " +
                                         std::to_string(*state_->capacity) + " bytes)");
      }
    }
    file->data.append(data);
    return {};
  }

  Status sync() override {
    std::lock_guard lock(state_->mutex);
    State::File* file = live_file();
    if (file == nullptr) return stale_handle(path_);
    ++state_->syncs;
    if (state_->take_sync_failure()) {
      return Error(Errc::kIo, "fdatasync " + path_ + ": input/output error (injected)");
    }
    file->synced = file->data.size();
    return {};
  }

  Status truncate(uint64_t size) override {
    std::lock_guard lock(state_->mutex);
    State::File* file = live_file();
    if (file == nullptr) return stale_handle(path_);
    file->data.resize(size);
    file->synced = std::min<uint64_t>(file->synced, size);
    return {};
  }

  uint64_t size() const override {
    std::lock_guard lock(state_->mutex);
    auto it = state_->files.find(path_);
    return it == state_->files.end() ? 0 : it->second.data.size();
  }

 private:
  State::File* live_file() {
    if (generation_ != state_->generation) return nullptr;
    auto it = state_->files.find(path_);
    return it == state_->files.end() ? nullptr : &it->second;
  }

  std::shared_ptr<State> state_;
  std::string path_;
  uint64_t generation_;
};

class FaultyReadableFile final : public ReadableFile {
 public:
  FaultyReadableFile(std::shared_ptr<State> state, std::string path, uint64_t generation)
      : state_(std::move(state)), path_(std::move(path)), generation_(generation) {}

  Status read_at(uint64_t offset, size_t count, std::string* out) const override {
    std::lock_guard lock(state_->mutex);
    if (generation_ != state_->generation) return stale_handle(path_);
    auto it = state_->files.find(path_);
    if (it == state_->files.end()) return missing(path_);
    const std::string& data = it->second.data;
    if (offset >= data.size()) {
      out->clear();
      return {};
    }
    out->assign(data, offset, std::min<uint64_t>(count, data.size() - offset));
    return {};
  }

  Result<uint64_t> size() const override {
    std::lock_guard lock(state_->mutex);
    if (generation_ != state_->generation) return stale_handle(path_);
    auto it = state_->files.find(path_);
    if (it == state_->files.end()) return missing(path_);
    return static_cast<uint64_t>(it->second.data.size());
  }

 private:
  std::shared_ptr<State> state_;
  std::string path_;
  uint64_t generation_;
};

}  // namespace

FaultyFileSystem::FaultyFileSystem(uint64_t seed) : state_(std::make_shared<State>(seed)) {}
FaultyFileSystem::~FaultyFileSystem() = default;

Result<std::unique_ptr<WritableFile>> FaultyFileSystem::open_writable(const std::string& path,
                                                                      bool create) {
  std::lock_guard lock(state_->mutex);
  if (state_->files.count(path) == 0) {
    if (!create) return missing(path);
    if (state_->dirs.count(parent_of(path)) == 0) {
      return Error(Errc::kIo, "open " + path + ": no such directory");
    }
    state_->removed.erase(path);
    state_->files[path] = State::File{};
  }
  return std::unique_ptr<WritableFile>(
      std::make_unique<FaultyWritableFile>(state_, path, state_->generation));
}

Result<std::unique_ptr<ReadableFile>> FaultyFileSystem::open_readable(
    const std::string& path) const {
  std::lock_guard lock(state_->mutex);
  if (state_->files.count(path) == 0) return missing(path);
  return std::unique_ptr<ReadableFile>(
      std::make_unique<FaultyReadableFile>(state_, path, state_->generation));
}

Result<std::vector<std::string>> FaultyFileSystem::list(const std::string& raw_dir) const {
  const std::string dir = normalize(raw_dir);
  std::lock_guard lock(state_->mutex);
  if (state_->dirs.count(dir) == 0) return Error(Errc::kIo, "opendir " + dir + ": no such directory");
  std::vector<std::string> names;
  for (const auto& [path, file] : state_->files) {
    if (parent_of(path) == dir) names.push_back(path.substr(path.rfind('/') + 1));
  }
  return names;  // std::map keeps them sorted
}

Status FaultyFileSystem::create_dirs(const std::string& raw_dir) {
  const std::string dir = normalize(raw_dir);
  std::lock_guard lock(state_->mutex);
  // Directories are durable at once: only files model lost creations.
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    state_->dirs[dir.substr(0, slash)] = true;
    if (slash == std::string::npos) break;
  }
  return {};
}

Status FaultyFileSystem::remove(const std::string& path) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return missing(path);
  if (it->second.name_durable) state_->removed[path] = std::move(it->second);
  state_->files.erase(it);
  return {};
}

Status FaultyFileSystem::sync_dir(const std::string& raw_dir) {
  const std::string dir = normalize(raw_dir);
  std::lock_guard lock(state_->mutex);
  ++state_->syncs;
  if (state_->take_sync_failure()) {
    return Error(Errc::kIo, "fsync " + dir + ": input/output error (injected)");
  }
  for (auto& [path, file] : state_->files) {
    if (parent_of(path) == dir) file.name_durable = true;
  }
  std::erase_if(state_->removed, [&dir](const auto& item) { return parent_of(item.first) == dir; });
  return {};
}

bool FaultyFileSystem::exists(const std::string& path) const {
  std::lock_guard lock(state_->mutex);
  return state_->files.count(path) > 0 || state_->dirs.count(normalize(path)) > 0;
}

void FaultyFileSystem::crash(CrashOptions options) {
  std::lock_guard lock(state_->mutex);
  ++state_->generation;
  base::Rng& rng = state_->rng;
  // Removals never made durable are undone.
  for (auto& [path, file] : state_->removed) {
    if (state_->files.count(path) == 0) {
      file.data.resize(file.synced);
      state_->files[path] = std::move(file);
    }
  }
  state_->removed.clear();
  for (auto it = state_->files.begin(); it != state_->files.end();) {
    State::File& file = it->second;
    if (options.lose_unsynced_names && !file.name_durable) {
      it = state_->files.erase(it);
      continue;
    }
    const uint64_t unsynced = file.data.size() - file.synced;
    uint64_t kept = 0;
    if (options.keep_some_unsynced && unsynced > 0) kept = rng.between(0, unsynced);
    file.data.resize(file.synced + kept);
    if (options.garble_torn_tail && kept > 0 && rng.chance(1, 2)) {
      const uint64_t garbled = std::min<uint64_t>(kept, rng.between(1, 16));
      for (uint64_t i = file.data.size() - garbled; i < file.data.size(); ++i) {
        file.data[i] = static_cast<char>(rng.uniform(256));
      }
    }
    // What survived a power cut is on the platter now.
    file.synced = file.data.size();
    ++it;
  }
  state_->failing_syncs = 0;
}

Status FaultyFileSystem::flip_bit(const std::string& path, uint64_t offset, int bit) {
  std::lock_guard lock(state_->mutex);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return missing(path);
  if (offset >= it->second.data.size() || bit < 0 || bit > 7) {
    return Error(Errc::kInvalidArgument, "flip_bit beyond the end of " + path);
  }
  it->second.data[offset] = static_cast<char>(it->second.data[offset] ^ (1 << bit));
  return {};
}

void FaultyFileSystem::fail_next_syncs(int count) {
  std::lock_guard lock(state_->mutex);
  state_->failing_syncs = count;
}

void FaultyFileSystem::set_capacity_bytes(std::optional<uint64_t> capacity) {
  std::lock_guard lock(state_->mutex);
  state_->capacity = capacity;
}

uint64_t FaultyFileSystem::used_bytes() const {
  std::lock_guard lock(state_->mutex);
  return state_->used();
}

uint64_t FaultyFileSystem::sync_count() const {
  std::lock_guard lock(state_->mutex);
  return state_->syncs;
}

Result<std::string> FaultyFileSystem::contents(const std::string& path) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return missing(path);
  return it->second.data;
}

Result<uint64_t> FaultyFileSystem::synced_size(const std::string& path) const {
  std::lock_guard lock(state_->mutex);
  auto it = state_->files.find(path);
  if (it == state_->files.end()) return missing(path);
  return it->second.synced;
}

void FaultyFileSystem::overwrite(const std::string& path, std::string data) {
  std::lock_guard lock(state_->mutex);
  State::File& file = state_->files[path];
  file.data = std::move(data);
  file.synced = file.data.size();
  file.name_durable = true;
  state_->dirs[parent_of(path)] = true;
}

}  // namespace synod::storage
