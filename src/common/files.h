// Small-file helpers for state directories (certificates, keys): bounded reads, atomic writes with an explicit mode, a private
// directory, and an advisory lock so two `wtmesh` processes never create or replace the same files at once.
// Errors throw std::runtime_error naming the file.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace wtmesh::files {

inline constexpr size_t kMaxKeyFile = 64 * 1024;  // PEM keys are a few hundred bytes

// nullopt when the file does not exist; throws for other errors and for files over `max_size` bytes.
std::optional<std::string> read_small_file(const std::filesystem::path& path, size_t max_size = kMaxKeyFile);

// Temp file in the same directory + fsync + rename: readers see the old or the new content, never a mix.
void write_file_atomic(const std::filesystem::path& path, std::string_view data, mode_t mode);

// Creates `dir` (and parents) if missing; a directory we create gets mode 0700.
void ensure_private_dir(const std::filesystem::path& dir);

void sync_dir(const std::filesystem::path& dir);

// Tightens a private key file that someone made group/world readable to 0600.
void ensure_private_mode(const std::filesystem::path& path);

// flock(LOCK_EX) on a lock file, released by the destructor.
class DirLock {
 public:
  explicit DirLock(const std::filesystem::path& lock_file);
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;
  ~DirLock();

 private:
  int fd_ = -1;
};

}  // namespace wtmesh::files
