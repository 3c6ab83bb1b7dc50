#include "tunnel/revocation.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "common/files.h"
#include "tunnel/credential.h"

namespace wtmesh::tunnel {

RevocationList RevocationList::parse(std::string_view text) {
  RevocationList list;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t'))
      line.remove_suffix(1);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    if (!is_valid_credential_id(line)) continue;
    if (list.ids_.size() >= kMaxEntries && !list.contains(line)) {
      throw std::length_error("more than " + std::to_string(kMaxEntries) + " revoked ids");
    }
    list.ids_.emplace(line);
  }
  return list;
}

RevocationList RevocationList::load(const std::filesystem::path& file) {
  std::optional<std::string> text;
  try {
    text = files::read_small_file(file, kMaxFileSize);
    if (!text) return {};
    return parse(*text);
  } catch (const std::length_error& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

bool RevocationList::add(const std::filesystem::path& file, std::string_view id) {
  if (!is_valid_credential_id(id)) {
    throw std::invalid_argument("\"" + std::string(id.substr(0, 80)) + "\" is not a credential id");
  }
  if (file.has_parent_path()) files::ensure_private_dir(file.parent_path());
  files::DirLock lock(file.string() + ".lock");
  if (load(file).contains(id)) return false;
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error(file.string() + ": " + std::strerror(errno));
  const std::string line = std::string(id) + "\n";
  const ssize_t n = ::write(fd, line.data(), line.size());
  const int err = errno;
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (n != static_cast<ssize_t>(line.size()) || !synced) {
    throw std::runtime_error(file.string() + ": cannot append: " + std::strerror(err));
  }
  return true;
}

}  // namespace wtmesh::tunnel
