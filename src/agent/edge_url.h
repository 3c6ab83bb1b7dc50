// Parsing of the edge address the agent and `wtmesh doctor` are given: https://HOST[:PORT][/path].
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace wtmesh::agent {

struct EdgeUrl {
  std::string host;  // DNS name or IP literal (IPv6 without brackets)
  uint16_t port = 443;
  std::string path;  // "" when the URL has none
  // host[:port] as sent in :authority (IPv6 in brackets; port omitted when 443).
  std::string authority() const;
};

// How the agent reaches the edge (`--transport`). kAuto: QUIC first, and HTTP/2 over TCP when the QUIC
// handshake has not completed within the fallback delay (the caller runs that race: TunnelAgent, doctor).
enum class EdgeTransport { kQuic, kH2, kAuto };
std::optional<EdgeTransport> parse_edge_transport(std::string_view text);
const char* to_string(EdgeTransport t);  // "quic", "h2", "auto"

// nullopt with `error` set to a sentence when the URL is not https://HOST[:PORT][/PATH].
std::optional<EdgeUrl> parse_edge_url(std::string_view url, std::string* error);
// `--edge` with a pair of edges: URLs separated by commas ("https://a:4433,https://b:4433"), at most
// kMaxEdges; nullopt with `error` when one is not a URL as above.
inline constexpr size_t kMaxEdges = 8;
std::optional<std::vector<EdgeUrl>> parse_edge_urls(std::string_view urls, std::string* error);

}  // namespace wtmesh::agent
