// The demo page the edge serves at GET /connect/ on its own address (a host no tunnel has): a line
// terminal over one bidi stream and a datagram ping, both to /connect/NAME (edge/browser_connect.h).
// It reads NAME, the token and an optional certificate hash from the URL's fragment
// (#name=NAME&token=TOKEN&hash=HEX), which the browser never sends, so the token stays out of
// request lines and logs. tests/peers/browser_connect.sh drives it through window.wtmeshConnect.
#pragma once

#include <string_view>

namespace wtmesh::edge {

inline constexpr std::string_view kConnectPagePath = "/connect/";
std::string_view connect_page_html();

}  // namespace wtmesh::edge
