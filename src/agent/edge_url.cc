#include "agent/edge_url.h"

#include <charconv>

namespace wtmesh::agent {

std::string EdgeUrl::authority() const {
  std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return port == 443 ? h : h + ":" + std::to_string(port);
}

std::optional<EdgeUrl> parse_edge_url(std::string_view url, std::string* error) {
  auto fail = [&](std::string msg) -> std::optional<EdgeUrl> {
    if (error) *error = std::move(msg);
    return std::nullopt;
  };
  constexpr std::string_view kScheme = "https://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return fail("the edge URL must start with https:// (got '" + std::string(url) + "')");
  }
  std::string_view rest = url.substr(kScheme.size());
  EdgeUrl out;
  const size_t slash = rest.find('/');
  if (slash != std::string_view::npos) {
    out.path = std::string(rest.substr(slash));
    rest = rest.substr(0, slash);
  }
  std::string_view port_part;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos)
      return fail("unterminated IPv6 address in '" + std::string(url) + "'");
    out.host = std::string(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':')
        return fail("unexpected text after the IPv6 address in '" + std::string(url) + "'");
      port_part = rest.substr(1);
    }
  } else {
    const size_t colon = rest.rfind(':');
    out.host = std::string(rest.substr(0, colon));
    if (colon != std::string_view::npos) port_part = rest.substr(colon + 1);
  }
  if (out.host.empty()) return fail("the edge URL has no host: '" + std::string(url) + "'");
  if (!port_part.empty()) {
    unsigned value = 0;
    auto [p, ec] = std::from_chars(port_part.data(), port_part.data() + port_part.size(), value);
    if (ec != std::errc() || p != port_part.data() + port_part.size() || value == 0 || value > 65535) {
      return fail("invalid port '" + std::string(port_part) + "' in the edge URL");
    }
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

std::optional<EdgeTransport> parse_edge_transport(std::string_view text) {
  if (text == "quic") return EdgeTransport::kQuic;
  if (text == "h2") return EdgeTransport::kH2;
  if (text == "auto") return EdgeTransport::kAuto;
  return std::nullopt;
}

const char* to_string(EdgeTransport t) {
  switch (t) {
    case EdgeTransport::kQuic:
      return "quic";
    case EdgeTransport::kH2:
      return "h2";
    case EdgeTransport::kAuto:
      return "auto";
  }
  return "?";
}

std::optional<std::vector<EdgeUrl>> parse_edge_urls(std::string_view urls, std::string* error) {
  std::vector<EdgeUrl> out;
  for (;;) {
    const size_t comma = urls.find(',');
    auto one = parse_edge_url(urls.substr(0, comma), error);
    if (!one) return std::nullopt;
    out.push_back(std::move(*one));
    if (comma == std::string_view::npos) break;
    if (out.size() == kMaxEdges) {
      if (error) *error = "at most " + std::to_string(kMaxEdges) + " edges";
      return std::nullopt;
    }
    urls.remove_prefix(comma + 1);
  }
  return out;
}

}  // namespace wtmesh::agent
