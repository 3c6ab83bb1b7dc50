#include "edge/public_connection.h"

#include <spdlog/spdlog.h>

#include <utility>

namespace wtmesh::edge {

RequestLog make_request_log(std::string_view method, std::string_view host, std::string_view target, int status,
                            uint64_t bytes, std::chrono::steady_clock::duration took, std::string note,
                            std::string version) {
  const auto or_dash = [](std::string_view v) { return std::string(v.empty() ? "-" : v); };
  RequestLog l;
  l.method = or_dash(method);
  l.host = or_dash(host);
  l.target = or_dash(target);
  l.status = status;
  l.bytes = bytes;
  l.duration = std::chrono::duration_cast<std::chrono::microseconds>(took);
  l.note = std::move(note);
  l.version = std::move(version);
  return l;
}

void log_request(std::string_view peer, const RequestLog& l) {
  const std::string_view version = l.version == "HTTP/2" ? " h2" : l.version == "HTTP/3" ? " h3" : "";
  spdlog::info("http {} {} {}{} {} {}B {}ms{}{}{}", peer, l.method, l.host, l.target, l.status, l.bytes,
               l.duration.count() / 1000, version, l.note.empty() ? "" : " - ", l.note);
}

}  // namespace wtmesh::edge
