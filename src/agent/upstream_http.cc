#include "agent/upstream_http.h"

#include <algorithm>
#include <array>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <optional>

#include "common/beast_chunked.h"
#include "common/text.h"

namespace wtmesh::agent {

namespace http = boost::beast::http;

namespace {

// ASCII only, as HTTP field names and the tokens compared here are; no locale lookups per character.
char lower_char(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = lower_char(c);
  return out;
}

bool has_upper(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

// RFC 9110 §5.6.2 tchar, as a table: every request's method and field names go through it.
constexpr std::array<bool, 256> kTchar = [] {
  std::array<bool, 256> t{};
  for (int c = '0'; c <= '9'; ++c) t[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = t[c - 'a' + 'A'] = true;
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(c)] = true;
  return t;
}();

bool is_tchar(char c) { return kTchar[static_cast<unsigned char>(c)]; }

bool is_token(std::string_view s) { return !s.empty() && std::all_of(s.begin(), s.end(), is_tchar); }

// Visible characters only: no space, no control characters.
bool is_visible(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
  });
}

bool is_field_value(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

// Names listed in a Connection header value (comma-separated tokens), lower-cased.
std::vector<std::string> connection_tokens(std::string_view value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= value.size()) {
    size_t end = value.find(',', start);
    if (end == std::string_view::npos) end = value.size();
    auto tok = value.substr(start, end - start);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (!tok.empty()) out.push_back(lower(tok));
    start = end + 1;
  }
  return out;
}

// "60 KiB" for whole KiB, else "512 bytes": a limit as the user set it.
std::string size_text(size_t bytes) {
  if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
  return std::to_string(bytes) + " bytes";
}

}  // namespace

bool is_hop_by_hop(std::string_view n) {
  static constexpr std::array<std::string_view, 8> kNames = {
      "connection", "keep-alive",        "proxy-connection", "te",
      "trailer",    "transfer-encoding", "upgrade",          "proxy-authenticate"};
  return std::find(kNames.begin(), kNames.end(), n) != kNames.end();
}

std::optional<UpstreamRequest> encode_upstream_request(const tunnel::RequestHead& h, std::string* error) {
  auto bad = [&](std::string why) -> std::optional<UpstreamRequest> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (!is_token(h.method)) return bad("request method is not an HTTP token");
  if (h.target.empty() || !is_visible(h.target) || (h.target[0] != '/' && h.target != "*")) {
    return bad("request target is not an origin-form path");
  }
  if (!is_visible(h.authority)) return bad("request authority contains spaces or control characters");
  UpstreamRequest r;
  if (h.method == "GET") {
    for (const auto& [name, value] : h.headers) {
      if (iequals(name, "upgrade") && iequals(value, "websocket")) r.upgrade = true;
    }
  }
  std::string& o = r.head;
  o.reserve(256);
  o.append(h.method).append(" ").append(h.target).append(" HTTP/1.1\r\n");
  if (!h.authority.empty()) o.append("Host: ").append(h.authority).append("\r\n");
  for (const auto& [name, value] : h.headers) {
    if (!is_token(name))
      return bad("request header name \"" + name.substr(0, 64) + "\" is not an HTTP token");
    if (!is_field_value(value)) return bad("request header " + name + " contains CR, LF or NUL");
    // Names arrive lower-case (docs/protocol.md §4); only a name that is not costs a copy.
    std::string lowered;
    std::string_view n = name;
    if (has_upper(name)) n = lowered = lower(name);
    if (is_hop_by_hop(n) || n == "host" || n == "content-length") continue;
    o.append(name).append(": ").append(value).append("\r\n");
  }
  if (r.upgrade) {
    // RFC 6455 §4.1: a GET with no body; what follows a 101 is the new protocol's, unframed.
    o.append("Connection: Upgrade\r\nUpgrade: websocket\r\n");
  } else if (h.content_length) {
    o.append("Content-Length: ").append(std::to_string(*h.content_length)).append("\r\n");
  } else if (h.has_body) {
    o.append("Transfer-Encoding: chunked\r\n");
    r.chunked = true;
  } else if (h.method == "POST" || h.method == "PUT" || h.method == "PATCH") {
    o.append("Content-Length: 0\r\n");  // some servers insist on a length for these methods
  }
  o.append("\r\n");
  return r;
}

void append_chunk(std::string& out, std::span<const uint8_t> data) {
  if (data.empty()) return;
  char hex[20];
  const int n = std::snprintf(hex, sizeof(hex), "%zx\r\n", data.size());
  out.append(hex, static_cast<size_t>(n));
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
  out.append("\r\n");
}

// --- response decoder -----------------------------------------------------------------------------

struct ResponseDecoder::Impl {
  std::optional<http::response_parser<http::buffer_body>> parser;
};

ResponseDecoder::ResponseDecoder(bool head_request, Limits limits)
    : head_request_(head_request), limits_(limits), impl_(std::make_unique<Impl>()) {
  new_parser();
}

ResponseDecoder::~ResponseDecoder() = default;

void ResponseDecoder::new_parser() {
  header_bytes_ = 0;
  body_input_ = 0;
  auto& p = impl_->parser.emplace();
  p.header_limit(static_cast<std::uint32_t>(limits_.header_limit));
  p.body_limit(boost::none);  // bodies stream through; their size is not ours to cap
  if (head_request_) p.skip(true);
}

size_t ResponseDecoder::input_room() const {
  const size_t cap = std::max(limits_.input_buffer, limits_.header_limit + 1);
  return done_ || !error_.empty() || eof_ ? 0 : cap - std::min(cap, in_.size());
}

void ResponseDecoder::put_input(std::span<const uint8_t> data) {
  in_.insert(in_.end(), data.begin(),
             data.begin() + static_cast<std::ptrdiff_t>(std::min(data.size(), input_room())));
}

ResponseDecoder::Status ResponseDecoder::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  return Status::kError;
}

bool ResponseDecoder::reusable() const { return done_ && keep_alive_ && in_.empty() && !eof_; }

// The parser finished a header: skips interim responses; builds the tunnel head for a final one.
bool ResponseDecoder::finish_head() {
  auto& p = *impl_->parser;
  const auto& msg = p.get();
  status_ = msg.result_int();
  head_ = {};
  head_.status = status_;
  std::vector<std::string> named;
  if (auto it = msg.find(http::field::connection); it != msg.end()) named = connection_tokens(it->value());
  head_.headers.reserve(static_cast<size_t>(std::distance(msg.begin(), msg.end())));
  for (const auto& f : msg) {
    std::string n = lower(f.name_string());
    if (is_hop_by_hop(n) || n == "content-length") continue;
    if (std::find(named.begin(), named.end(), n) != named.end()) continue;
    if (head_.headers.size() == tunnel::kMaxHeaderCount) {
      error_ =
          "the upstream response has more than " + std::to_string(tunnel::kMaxHeaderCount) + " header fields";
      return false;
    }
    head_.headers.emplace_back(std::move(n), std::string(f.value()));
  }
  if (auto len = p.content_length()) head_.content_length = *len;
  head_.has_body = !p.is_done();
  chunked_ = p.chunked();
  head_fields_ = static_cast<size_t>(std::distance(msg.begin(), msg.end()));
  keep_alive_ = p.keep_alive() && !p.need_eof();
  head_produced_ = true;
  return true;
}

ResponseDecoder::Status ResponseDecoder::decode(std::vector<uint8_t>& body, size_t max_body) {
  if (!error_.empty()) return Status::kError;
  if (done_) return Status::kDone;
  if (raw_) return decode_raw(body, max_body);
  auto& p = *impl_->parser;
  for (;;) {
    if (p.is_header_done() && !head_produced_) {
      const int status = p.get().result_int();
      // Beast takes any three digits; the tunnel (and HTTP) know 100..599 only.
      if (status < 100 || status > 599)
        return fail("the upstream sent an invalid status code (" + std::to_string(status) + ")");
      if (status == 101) {
        if (!upgrade_) return fail("the upstream switched protocols without being asked to");
        if (!finish_head()) return Status::kError;
        head_.has_body = true;  // the new protocol's bytes, until EOF
        head_.content_length.reset();
        keep_alive_ = false;
        raw_ = true;
        return Status::kHead;
      }
      if (status / 100 == 1) {
        // Interim response (100 Continue, 103 Early Hints): handed on (the exchange forwards it
        // when the tunnel has the feature), then the next one is parsed.
        if (++informational_ > limits_.max_informational)
          return fail("the upstream sent too many 1xx responses");
        if (!finish_head()) return Status::kError;
        head_produced_ = false;
        head_.has_body = false;
        head_.content_length.reset();
        new_parser();
        return Status::kHead;
      }
      if (!finish_head()) return Status::kError;
      if (p.is_done()) done_ = true;
      return Status::kHead;
    }
    if (p.is_done()) {
      done_ = true;
      return Status::kDone;
    }
    if (in_.empty()) {
      if (!eof_) return Status::kNeedInput;
      if (!p.got_some()) return fail("the upstream closed the connection before responding");
      boost::system::error_code ec;
      p.put_eof(ec);
      if (ec || !p.is_done()) {
        return fail(head_produced_ ? "the upstream closed the connection in the middle of the response"
                                   : "the upstream closed the connection before responding");
      }
      done_ = true;
      return Status::kDone;
    }
    const bool header_done = p.is_header_done();
    if (header_done && hold_chunked_body_start(p.chunked(), body_input_, in_)) {
      if (!eof_) return Status::kNeedInput;  // common/beast_chunked.h
      return fail("the upstream closed the connection in the middle of the response");
    }
    size_t room = 0;
    const size_t before = body.size();
    if (header_done) {
      if (body.size() >= max_body) return Status::kBodyFull;
      // The parser can't produce more body bytes than it is given input: sizing the slice to that
      // avoids zero-filling max_body bytes per call for small responses.
      room = std::min(max_body - body.size(), in_.size());
      body.resize(before + room);
      p.get().body().data = body.data() + before;
      p.get().body().size = room;
      p.get().body().more = true;
    }
    boost::system::error_code ec;
    const size_t n = p.put(boost::asio::buffer(in_.data(), in_.size()), ec);
    if (header_done) {
      body.resize(before + (room - p.get().body().size));
      p.get().body().data = nullptr;
      p.get().body().size = 0;
    }
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
    // Beast bounds the status line and the fields separately when both arrive in one piece, and the
    // whole section when they do not: count it here so the limit does not depend on how it arrived.
    // (A put that completes the header stops there, so all of `n` is header bytes.)
    if (!header_done) header_bytes_ += n;
    if (header_done) body_input_ += n;
    if (!header_done && p.is_header_done() && header_bytes_ > limits_.header_limit)
      ec = http::error::header_limit;
    if (ec == http::error::need_buffer) continue;
    if (ec == http::error::need_more) {
      if (n > 0) continue;
      if (input_room() == 0 && !eof_)
        return fail("the upstream response has a line longer than the input buffer");
      if (!eof_) return Status::kNeedInput;
      return fail(head_produced_ ? "the upstream closed the connection in the middle of the response"
                                 : "the upstream closed the connection before responding");
    }
    if (ec == http::error::header_limit) {
      return fail("the upstream response header is over " + size_text(limits_.header_limit));
    }
    if (ec) return fail("the upstream sent a malformed response (" + ec.message() + ")");
  }
}

tunnel::HeaderPairs ResponseDecoder::take_trailers() {
  tunnel::HeaderPairs out;
  if (!done_ || !chunked_ || !impl_->parser) return out;
  const auto& msg = impl_->parser->get();
  size_t i = 0;
  for (const auto& f : msg) {
    if (i++ < head_fields_) continue;
    std::string n = lower(f.name_string());
    if (is_hop_by_hop(n) || n == "content-length") continue;  // the count is the tunnel's to check
    out.emplace_back(std::move(n), std::string(f.value()));
  }
  return out;
}

// After a 101: upstream bytes pass through as they are (the parser stopped at the end of the head, so
// bytes the upstream sent right behind it are still in in_), until EOF.
ResponseDecoder::Status ResponseDecoder::decode_raw(std::vector<uint8_t>& body, size_t max_body) {
  if (!in_.empty()) {
    if (body.size() >= max_body) return Status::kBodyFull;
    const size_t n = std::min(max_body - body.size(), in_.size());
    body.insert(body.end(), in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
    in_.erase(in_.begin(), in_.begin() + static_cast<std::ptrdiff_t>(n));
    if (!in_.empty()) return Status::kBodyFull;
  }
  if (!eof_) return Status::kNeedInput;
  done_ = true;
  return Status::kDone;
}

}  // namespace wtmesh::agent
