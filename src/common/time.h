// The one name for a point on the steady clock, used by every sans-I/O class that takes time as a
// parameter (deadlines, on_tick(now), injected clocks). QUIC's own timestamps are quic::Timestamp
// (ngtcp2 nanoseconds).
#pragma once

#include <chrono>

namespace wtmesh {

using SteadyTime = std::chrono::steady_clock::time_point;

}  // namespace wtmesh
