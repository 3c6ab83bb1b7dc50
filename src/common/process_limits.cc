#include "common/process_limits.h"

#include <sched.h>
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string>

namespace wtmesh {

OpenFileLimit raise_open_file_limit() {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return {};
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return {static_cast<uint64_t>(rl.rlim_cur), static_cast<uint64_t>(rl.rlim_max)};
}

namespace {

// A cgroup file's text without its spaces, tabs and newline (common/text.h's trim() keeps newlines;
// named apart from it so a unity build never sees two trims).
std::string_view trim_file_text(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\n' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\n' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::optional<int64_t> whole_number(std::string_view s) {
  s = trim_file_text(s);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc{} || end != s.data() + s.size()) return std::nullopt;
  return v;
}

std::optional<unsigned> cores_for(int64_t quota, int64_t period) {
  if (quota <= 0 || period <= 0) return std::nullopt;
  const int64_t cores = (quota + period - 1) / period;
  return static_cast<unsigned>(std::clamp<int64_t>(cores, 1, 1 << 16));
}

std::string read_small_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return {};
  std::string text(256, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

// The cgroup path of this process for `controller` ("" for the v2 hierarchy), from /proc/self/cgroup
// ("0::/a/b" for v2, "4:cpu,cpuacct:/a/b" for v1).
std::optional<std::string> own_cgroup(std::string_view controller) {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  for (int lines = 0; lines < 64 && std::getline(in, line); ++lines) {
    const size_t a = line.find(':');
    const size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    const std::string_view names = std::string_view(line).substr(a + 1, b - a - 1);
    const bool match = controller.empty() ? names.empty() : [&] {
      std::stringstream list{std::string(names)};
      std::string name;
      while (std::getline(list, name, ','))
        if (name == controller) return true;
      return false;
    }();
    if (match) return line.substr(b + 1);
  }
  return std::nullopt;
}

// The smallest quota of `path` and its parents (a parent's quota binds its children too).
template <typename QuotaAt>
std::optional<unsigned> smallest_quota(std::string path, QuotaAt quota_at) {
  std::optional<unsigned> smallest;
  for (int depth = 0; depth < 32; ++depth) {
    if (const auto q = quota_at(path)) smallest = smallest ? std::min(*smallest, *q) : *q;
    if (path.empty() || path == "/") break;
    const size_t slash = path.find_last_of('/');
    path = slash == std::string::npos || slash == 0 ? std::string{} : path.substr(0, slash);
  }
  return smallest;
}

}  // namespace

std::optional<unsigned> cores_from_cpu_max(std::string_view text) {
  text = trim_file_text(text);
  const size_t space = text.find(' ');
  if (space == std::string_view::npos || text.substr(0, space) == "max") return std::nullopt;
  const auto quota = whole_number(text.substr(0, space));
  const auto period = whole_number(text.substr(space + 1));
  if (!quota || !period) return std::nullopt;
  return cores_for(*quota, *period);
}

std::optional<unsigned> cores_from_cfs(std::string_view quota_us, std::string_view period_us) {
  const auto quota = whole_number(quota_us);
  const auto period = whole_number(period_us);
  if (!quota || !period) return std::nullopt;
  return cores_for(*quota, *period);
}

unsigned usable_cores() {
  unsigned cores = 0;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) cores = static_cast<unsigned>(CPU_COUNT(&set));
  if (cores == 0) cores = 1;

  std::optional<unsigned> quota;
  if (const auto v2 = own_cgroup("")) {
    quota = smallest_quota(*v2, [](const std::string& p) {
      return cores_from_cpu_max(read_small_file("/sys/fs/cgroup" + p + "/cpu.max"));
    });
  }
  if (!quota) {
    if (const auto v1 = own_cgroup("cpu")) {
      quota = smallest_quota(*v1, [](const std::string& p) {
        const std::string dir = "/sys/fs/cgroup/cpu" + p;
        return cores_from_cfs(read_small_file(dir + "/cpu.cfs_quota_us"),
                              read_small_file(dir + "/cpu.cfs_period_us"));
      });
    }
  }
  return quota ? std::max(1u, std::min(cores, *quota)) : cores;
}

}  // namespace wtmesh
