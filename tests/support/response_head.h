// An agent's tunnel response head as the edge's tests build it (tunnel/wire.h), shared by the unit
// fakes (tests/unit/edge/fakes.h) and the integration support (tests/integration/tunnel_edge_support.h).
#pragma once

#include <cstdint>
#include <optional>
#include <utility>

#include "tunnel/wire.h"

namespace wtmesh::test {

// `status`, a body (announced `len` bytes, or of unknown length) unless `body` is false, and `h`.
inline tunnel::ResponseHead response_head(int status, std::optional<uint64_t> len, bool body = true,
                                          tunnel::HeaderPairs h = {}) {
  tunnel::ResponseHead r;
  r.status = status;
  r.has_body = body;
  r.content_length = len;
  r.headers = std::move(h);
  return r;
}

}  // namespace wtmesh::test
