#include <spdlog/spdlog.h>

#include "edge/public_connection.h"

namespace wtmesh::edge {

void log_request(std::string_view peer, const RequestLog& l) {
  const std::string_view version = l.version == "HTTP/2" ? " h2" : l.version == "HTTP/3" ? " h3" : "";
  spdlog::info("http {} {} {}{} {} {}B {}ms{}{}{}", peer, l.method, l.host, l.target, l.status, l.bytes,
               l.duration.count() / 1000, version, l.note.empty() ? "" : " - ", l.note);
}

}  // namespace wtmesh::edge
