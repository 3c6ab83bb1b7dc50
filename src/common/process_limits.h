// Per-process resource limits a server needs raised before it accepts traffic.
#pragma once

#include <cstdint>

namespace wtmesh {

struct OpenFileLimit {
  uint64_t soft = 0;
  uint64_t hard = 0;
};

// Raises the soft RLIMIT_NOFILE to the hard limit (each public connection and each upstream connection
// is a descriptor; Debian's default soft limit is 1024) and returns the limits now in force. Leaves
// them as they are when the call is refused.
OpenFileLimit raise_open_file_limit();

}  // namespace wtmesh
