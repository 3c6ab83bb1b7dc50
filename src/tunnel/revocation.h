// Revoked credential ids (docs/protocol.md §6.1): STATE_DIR/revoked, one id per line, appended by
// `wtmesh revoke` and re-read by the edge when the file changes (it checks every 2 s and before it
// accepts a session token). Lines that are not credential ids (blank, comments) are skipped. Bounded:
// at most kMaxEntries ids and kMaxFileSize bytes; a larger file is an error (the edge keeps the list
// it had and logs it).
#pragma once

#include <cstddef>
#include <filesystem>
#include <set>
#include <string>
#include <string_view>

namespace wtmesh::tunnel {

class RevocationList {
 public:
  static constexpr size_t kMaxEntries = 100'000;
  static constexpr size_t kMaxFileSize = 8 * 1024 * 1024;

  static std::filesystem::path file_in(const std::filesystem::path& state_dir) {
    return state_dir / "revoked";
  }

  // The ids in `text` (the file's contents); throws std::length_error over kMaxEntries.
  static RevocationList parse(std::string_view text);
  // The file's ids; an empty list when it does not exist. Throws std::runtime_error naming the file
  // when it cannot be read or is over a limit.
  static RevocationList load(const std::filesystem::path& file);
  // Appends `id` to `file` (created 0600 in a 0700 directory) unless it is listed already; false then.
  // Throws std::invalid_argument for a string that is not a credential id, std::runtime_error for I/O.
  static bool add(const std::filesystem::path& file, std::string_view id);

  bool contains(std::string_view id) const { return ids_.find(id) != ids_.end(); }
  size_t size() const { return ids_.size(); }
  bool empty() const { return ids_.empty(); }

 private:
  std::set<std::string, std::less<>> ids_;
};

}  // namespace wtmesh::tunnel
