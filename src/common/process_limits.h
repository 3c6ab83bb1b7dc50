// Per-process resource limits a server needs raised before it accepts traffic, and the cores it may
// use.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace wtmesh {

struct OpenFileLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (each public connection and each upstream connection
// is a descriptor; Debian's default soft limit is 1024) and returns the limits now in force. Leaves
// them as they are when the call is refused.
OpenFileLimit raise_open_file_limit();

// The cores this process may run on: the CPUs of its affinity mask (taskset, a container's cpuset),
// fewer when its cgroup's CPU quota allows less (a container's --cpus: cgroup v2 `cpu.max` or v1
// `cpu.cfs_quota_us` of its cgroup and every parent's, rounded up). At least 1. It is the default of
// `wtmesh edge --workers`: a thread per core the process can have, not per core the host has.
unsigned usable_cores();

// The cores a cgroup v2 `cpu.max` text allows ("200000 100000" -> 2, "150000 100000" -> 2, "max
// 100000" -> none); nullopt when it sets no quota or is not such a text.
std::optional<unsigned> cores_from_cpu_max(std::string_view text);

// The same for cgroup v1's `cpu.cfs_quota_us` and `cpu.cfs_period_us` texts ("-1": no quota).
std::optional<unsigned> cores_from_cfs(std::string_view quota_us, std::string_view period_us);

}  // namespace wtmesh
