// Parses --listen values: "HOST:PORT", "[V6]:PORT" or ":PORT" (all interfaces).
#pragma once

#include <boost/asio/ip/udp.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace wtmesh::cli {

std::optional<boost::asio::ip::udp::endpoint> parse_listen_address(std::string_view text, std::string* error);

}  // namespace wtmesh::cli
