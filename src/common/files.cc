// Small-file helpers for state directories.
#include "common/files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>

namespace wtmesh::files {
namespace {

namespace fs = std::filesystem;

[[noreturn]] void fail(const fs::path& file, const std::string& reason) {
  throw std::runtime_error(file.string() + ": " + reason);
}

std::string errno_text(int e) { return std::system_category().message(e); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

std::optional<std::string> read_small_file(const fs::path& path, size_t max_size) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ENOENT) return std::nullopt;
    fail(path, "cannot open: " + errno_text(errno));
  }
  std::string out;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "cannot read: " + errno_text(errno));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > max_size) fail(path, "larger than " + std::to_string(max_size) + " bytes");
  }
  return out;
}

void write_file_atomic(const fs::path& path, std::string_view data, mode_t mode) {
  std::string tmpl = path.string() + ".tmp.XXXXXX";
  int raw = ::mkstemp(tmpl.data());
  if (raw < 0) fail(path, "cannot write (creating temp file): " + errno_text(errno));
  Fd fd(raw);
  auto abort_write = [&](const std::string& what) {
    int e = errno;
    ::unlink(tmpl.c_str());
    fail(path, what + ": " + errno_text(e));
  };
  if (::fchmod(fd.get(), mode) != 0) abort_write("cannot set mode");
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd.get(), data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      abort_write("cannot write");
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd.get()) != 0) abort_write("cannot sync");
  if (::rename(tmpl.c_str(), path.c_str()) != 0) abort_write("cannot replace");
}

void ensure_private_dir(const fs::path& dir) {
  std::error_code ec;
  auto st = fs::status(dir, ec);
  if (fs::exists(st)) {
    if (!fs::is_directory(st)) fail(dir, "exists but is not a directory");
    return;
  }
  if (dir.has_parent_path()) {
    fs::create_directories(dir.parent_path(), ec);
    if (ec) fail(dir, "cannot create directory: " + ec.message());
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    fail(dir, "cannot create directory: " + errno_text(errno));
  ::chmod(dir.c_str(), 0700);  // mkdir applied the umask
}

void sync_dir(const fs::path& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() >= 0) ::fsync(fd.get());  // best effort: the renames already happened
}

void ensure_private_mode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) fail(path, "cannot stat: " + errno_text(errno));
  if ((st.st_mode & 077) != 0 && ::chmod(path.c_str(), 0600) != 0) {
    fail(path, "cannot restrict mode to 0600: " + errno_text(errno));
  }
}

DirLock::DirLock(const fs::path& lock_file) {
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) fail(lock_file, "cannot open lock file: " + errno_text(errno));
  while (::flock(fd_, LOCK_EX) != 0) {
    if (errno == EINTR) continue;
    int e = errno;
    ::close(fd_);
    fd_ = -1;
    fail(lock_file, "cannot lock: " + errno_text(e));
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace wtmesh::files
