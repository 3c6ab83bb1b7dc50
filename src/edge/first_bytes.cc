#include "edge/first_bytes.h"

#include <boost/asio/buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>

#include "edge/http_codec.h"

namespace wtmesh::edge {

namespace {

// Reads big-endian fields and length-delimited parts of a byte span; every read is bounded by the
// bytes there are, and a part whose length runs past them is cut to them.
class Reader {
 public:
  explicit Reader(std::span<const uint8_t> b) : b_(b) {}
  bool empty() const { return b_.empty(); }
  std::optional<size_t> number(size_t width) {
    if (b_.size() < width) return std::nullopt;
    size_t v = 0;
    for (size_t i = 0; i < width; ++i) v = (v << 8) | b_[i];
    b_ = b_.subspan(width);
    return v;
  }
  bool skip(size_t n) {
    if (b_.size() < n) return false;
    b_ = b_.subspan(n);
    return true;
  }
  // The next `n` bytes, or the rest when fewer are there.
  Reader part(size_t n) {
    const size_t k = std::min(n, b_.size());
    Reader r(b_.first(k));
    b_ = b_.subspan(k);
    return r;
  }
  // The next `n` bytes, only when all of them are there.
  std::optional<std::span<const uint8_t>> bytes(size_t n) {
    if (b_.size() < n) return std::nullopt;
    auto out = b_.first(n);
    b_ = b_.subspan(n);
    return out;
  }

 private:
  std::span<const uint8_t> b_;
};

constexpr size_t kHandshakeRecord = 22;
constexpr size_t kClientHello = 1;
constexpr size_t kMaxRecord = 16384;        // RFC 8446 §5.1: TLSPlaintext.length
constexpr size_t kServerNameExtension = 0;  // RFC 6066 §3
constexpr size_t kHostName = 0;             // NameType host_name
constexpr size_t kMaxDnsName = 253;

// A DNS host name as SNI carries it (no trailing dot, no address literal check needed: the route
// lookup simply finds nothing), lower-cased.
std::optional<std::string> dns_name(std::span<const uint8_t> raw) {
  if (raw.empty() || raw.size() > kMaxDnsName) return std::nullopt;
  std::string name;
  name.reserve(raw.size());
  for (const uint8_t c : raw) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '.' || c == '_';
    if (!ok) return std::nullopt;
    name.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
  }
  if (name.front() == '.' || name.back() == '.') return std::nullopt;
  return name;
}

}  // namespace

std::optional<std::string> client_hello_server_name(std::span<const uint8_t> bytes) {
  Reader r(bytes);
  // TLSPlaintext: content type, legacy_record_version (3.x), length.
  const auto type = r.number(1), major = r.number(1), minor = r.number(1), length = r.number(2);
  if (!length || *type != kHandshakeRecord || *major != 3 || *length == 0 || *length > kMaxRecord)
    return std::nullopt;
  (void)minor;
  Reader record = r.part(*length);
  const auto msg = record.number(1), msg_length = record.number(3);
  if (!msg_length || *msg != kClientHello) return std::nullopt;
  Reader hello = record.part(*msg_length);
  if (!hello.skip(2 + 32)) return std::nullopt;  // legacy_version, random
  const auto session_id = hello.number(1);
  if (!session_id || *session_id > 32 || !hello.skip(*session_id)) return std::nullopt;
  const auto suites = hello.number(2);
  if (!suites || !hello.skip(*suites)) return std::nullopt;
  const auto compression = hello.number(1);
  if (!compression || !hello.skip(*compression)) return std::nullopt;
  const auto extensions_length = hello.number(2);
  if (!extensions_length) return std::nullopt;
  Reader extensions = hello.part(*extensions_length);
  while (!extensions.empty()) {
    const auto ext = extensions.number(2), ext_length = extensions.number(2);
    if (!ext_length) return std::nullopt;
    Reader body = extensions.part(*ext_length);
    if (*ext != kServerNameExtension) continue;
    const auto list_length = body.number(2);
    if (!list_length) return std::nullopt;
    Reader list = body.part(*list_length);
    while (!list.empty()) {
      const auto name_type = list.number(1), name_length = list.number(2);
      if (!name_length) return std::nullopt;
      const auto name = list.bytes(*name_length);
      if (!name) return std::nullopt;
      if (*name_type == kHostName) return dns_name(*name);
    }
    return std::nullopt;  // one server_name extension at most (RFC 8446 §4.2)
  }
  return std::nullopt;
}

std::optional<std::string> request_head_host(std::span<const uint8_t> bytes) {
  namespace http = boost::beast::http;
  http::request_parser<http::empty_body> parser;
  parser.header_limit(static_cast<uint32_t>(std::min(bytes.size(), kMaxPublicHeaderBytes)));
  parser.eager(false);
  boost::beast::error_code ec;
  parser.put(boost::asio::buffer(bytes.data(), bytes.size()), ec);
  if (ec || !parser.is_header_done()) return std::nullopt;
  const auto host = parser.get().find(http::field::host);
  if (host == parser.get().end()) return std::nullopt;
  return normalize_host(std::string_view(host->value().data(), host->value().size()));
}

}  // namespace wtmesh::edge
