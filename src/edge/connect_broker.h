// The seam between a tunnel session's connect streams (docs/protocol.md §4.3; edge/agent_session.h
// reads the head, checks the token's `connect` scope and the per-session cap) and whatever reaches
// the names (edge/connect_bridges.h; the tests' fake). Sans-I/O interface.
#pragma once

#include <string_view>

#include "edge/tunnel_directory.h"

namespace wtmesh::edge {

class ConnectBroker {
 public:
  virtual ~ConnectBroker() = default;
  // A connect stream `ref` (its head read, its scope checked) asks for `name` (lower-case,
  // NAME.DOMAIN). Returns where the stream's events go from now on, never null: the stream is held
  // by its session like a request stream (write/consume/cancel/release through the directory), and
  // the broker answers it with a connect reply (tunnel/connect_stream.h), at once or later.
  virtual RequestStreamEvents* on_connect(const StreamRef& ref, std::string_view name) = 0;
};

}  // namespace wtmesh::edge
