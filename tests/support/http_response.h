// Test support: one complete HTTP/1.1 response parsed from raw bytes (Beast's parser), for tests
// that talk to the edge's public side or to a local service with their own sockets.
#pragma once

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <cctype>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace wtmesh::test {

struct ParsedResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;
  size_t consumed = 0;  // bytes of the input this response used
};

// One complete HTTP/1.1 response at the front of `raw` (nullopt if incomplete). `eof` completes a
// close-delimited body.
inline std::optional<ParsedResponse> parse_response(std::string_view raw, bool eof = false,
                                                    bool head = false) {
  namespace http = boost::beast::http;
  http::response_parser<http::string_body> p;
  p.body_limit(boost::none);
  p.skip(head);
  boost::system::error_code ec;
  size_t used = 0;
  while (used < raw.size() && !p.is_done()) {
    const size_t n = p.put(boost::asio::buffer(raw.data() + used, raw.size() - used), ec);
    used += n;
    if (ec == http::error::need_more) break;
    if (ec) return std::nullopt;
  }
  if (!p.is_done() && eof && p.is_header_done()) {
    p.put_eof(ec);
    if (ec) return std::nullopt;
  }
  if (!p.is_done()) return std::nullopt;
  ParsedResponse r;
  r.status = p.get().result_int();
  for (const auto& f : p.get()) {
    std::string n(f.name_string());
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[n] = std::string(f.value());
  }
  r.body = p.get().body();
  r.consumed = used;
  return r;
}

}  // namespace wtmesh::test
