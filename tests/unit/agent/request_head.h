// The tunnel request heads the agent's tests start exchanges with, built one way: what the edge sends
// for a public request to app.localhost:4433 on tunnel 1 (tests change fields from there).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "tunnel/wire.h"

namespace wtmesh::testing {

inline tunnel::RequestHead request(std::string method, std::string target, bool has_body = false,
                                   std::optional<uint64_t> length = std::nullopt) {
  tunnel::RequestHead h;
  h.tunnel_id = 1;
  h.method = std::move(method);
  h.target = std::move(target);
  h.authority = "app.localhost:4433";
  h.has_body = has_body;
  h.content_length = length;
  return h;
}

}  // namespace wtmesh::testing
