#include "cli/listen_address.h"

#include <charconv>

namespace wtmesh::cli {

std::optional<boost::asio::ip::udp::endpoint> parse_listen_address(std::string_view text, std::string* error) {
  auto fail = [&](const std::string& why) -> std::optional<boost::asio::ip::udp::endpoint> {
    if (error) *error = "invalid --listen '" + std::string(text) + "': " + why;
    return std::nullopt;
  };
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos) return fail("expected HOST:PORT");
  std::string_view host = text.substr(0, colon);
  const std::string_view port_text = text.substr(colon + 1);
  unsigned port = 0;
  auto [p, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || p != port_text.data() + port_text.size() || port > 65535) {
    return fail("the port must be a number from 0 to 65535");
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  boost::system::error_code aec;
  const auto addr = boost::asio::ip::make_address(std::string(host), aec);
  // append(), not "'" + string: GCC 12 at -O3 reports a false -Wrestrict for "lit" + string&&.
  if (aec) return fail(std::string("'").append(host).append("' is not an IP address"));
  return boost::asio::ip::udp::endpoint(addr, static_cast<uint16_t>(port));
}

}  // namespace wtmesh::cli
