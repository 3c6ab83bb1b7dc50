#include "edge/public_connection.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "common/log_text.h"

namespace wtmesh::edge {

RequestLog make_request_log(std::string_view method, std::string_view host, std::string_view target, int status,
                            uint64_t bytes, std::chrono::steady_clock::duration took, std::string note,
                            std::string version) {
  // Every field the client chose is escaped (no forged lines, no terminal escapes) and bounded, and
  // credentials in the query are redacted.
  const auto or_dash = [](std::string v) { return v.empty() ? std::string("-") : v; };
  RequestLog l;
  l.method = or_dash(log_text(method, 32));
  l.host = or_dash(log_text(host, 256));
  l.target = or_dash(log_target(target, 1024));
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
