// The one wildcard rule of wtmesh host patterns, shared by token host claims
// (tunnel::token_covers_host) and the edge's routes (edge::RouteTable): "*.example.com" matches a
// name with exactly one more label (a.example.com), not a deeper one (a.b.example.com) nor the parent
// itself (example.com).
#pragma once

#include <optional>
#include <string_view>

namespace wtmesh::tunnel {

// What follows the first label of `host` ("example.com" for "a.example.com"): the PARENT of the one
// "*.PARENT" pattern that matches `host`. nullopt when `host` has no such parent (no dot, an empty
// first label, or nothing after the dot). Case is left as it is.
constexpr std::optional<std::string_view> wildcard_parent(std::string_view host) {
  const size_t dot = host.find('.');
  if (dot == std::string_view::npos || dot == 0 || dot + 1 >= host.size()) return std::nullopt;
  return host.substr(dot + 1);
}

}  // namespace wtmesh::tunnel
