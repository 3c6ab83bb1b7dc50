// A fresh, uniquely named directory under the system temp dir, removed (with its contents) at
// destruction. Shared by the unit and integration tests.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>
#include <system_error>

namespace wtmesh::test {

class TempDir {
 public:
  // `prefix` names the directory (e.g. "wtmesh-edge"), so a leftover one says which test made it.
  explicit TempDir(const std::string& prefix = "wtmesh-test") {
    std::string tmpl = (std::filesystem::temp_directory_path() / (prefix + "-XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace wtmesh::test
