#include "agent/h2_codec.h"

#include <algorithm>
#include <charconv>

#include "agent/upstream_http.h"
#include "tunnel/websocket_handshake.h"

namespace wtmesh::agent {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
  return out;
}

bool has_ctl(std::string_view s) {
  return std::any_of(s.begin(), s.end(), [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

bool is_token(std::string_view s) {
  if (s.empty()) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 32 && u < 127 && std::string_view("\"(),/:;<=>?@[\\]{}").find(c) == std::string_view::npos;
  });
}

// Field names a `connection` header lists (they are hop-by-hop too).
std::vector<std::string> connection_options(const tunnel::HeaderPairs& fields) {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields) {
    if (lower(n) != "connection") continue;
    size_t pos = 0;
    while (pos <= v.size()) {
      const size_t comma = std::min(v.find(',', pos), v.size());
      std::string item = lower(v.substr(pos, comma - pos));
      item.erase(0, item.find_first_not_of(" \t"));
      item.erase(item.find_last_not_of(" \t") + 1);
      if (!item.empty()) out.push_back(item);
      pos = comma + 1;
    }
  }
  return out;
}

}  // namespace

bool H2Codec::start_request(const tunnel::RequestHead& head, std::string* error) {
  auto bad = [&](std::string why) {
    if (error) *error = std::move(why);
    return false;
  };
  if (!is_token(head.method) || head.method == "CONNECT")
    return bad("request method cannot go to " + protocol_ + " as given");
  if (head.target.empty() || has_ctl(head.target) || (head.target[0] != '/' && head.target != "*")) {
    return bad("request target is not an origin-form path");
  }
  if (has_ctl(head.authority)) return bad("request authority contains control characters");
  request_ = tunnel::RequestHead{};
  request_.tunnel_id = head.tunnel_id;
  request_.method = head.method;
  request_.target = head.target;
  request_.authority = head.authority;
  request_.has_body = head.has_body;
  request_.content_length = head.content_length;
  upgrade_ = switched_ = false;
  ws_key_.clear();
  if (head.method == "GET") {
    for (const auto& [name, value] : head.headers) {
      if (lower(name) == "upgrade" && lower(value) == "websocket") upgrade_ = true;
      if (lower(name) == "sec-websocket-key") ws_key_ = value;
    }
  }
  if (upgrade_) {
    if (!tunnel::is_valid_websocket_key(ws_key_))
      return bad("WebSocket request without a valid Sec-WebSocket-Key");
    request_.method = "CONNECT";  // the stream transport adds :protocol websocket (RFC 8441 §4)
    request_.has_body = true;
    request_.content_length.reset();
  }
  const auto listed = connection_options(head.headers);
  for (const auto& [name, value] : head.headers) {
    std::string n = lower(name);
    if (has_ctl(name) || has_ctl(value)) return bad("header field " + name + " contains CR, LF or NUL");
    if (n == "te") {
      if (lower(value) == "trailers") request_.headers.emplace_back("te", "trailers");
      continue;
    }
    if (is_hop_by_hop(n) || n == "host" || n == "content-length") continue;
    if (upgrade_ && n == "sec-websocket-key") continue;  // RFC 8441 §5: no key, no accept
    if (std::find(listed.begin(), listed.end(), n) != listed.end()) continue;
    request_.headers.emplace_back(std::move(n), value);
  }
  if (head.content_length && !upgrade_) {
    request_.headers.emplace_back("content-length", std::to_string(*head.content_length));
  }
  head_request_ = head.method == "HEAD";
  restart_response();
  return true;
}

void H2Codec::write_head(std::string& out) const {
  const auto bytes = tunnel::encode_request_open(request_);
  out.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void H2Codec::write_body(std::string& out, std::span<const uint8_t> data) const {
  out.append(reinterpret_cast<const char*>(data.data()), data.size());
}

void H2Codec::restart_response() {
  in_.clear();
  in_pos_ = 0;
  eof_ = false;
  reader_.emplace();
  head_produced_ = head_taken_ = done_ = false;
  body_allowed_ = true;
  head_ = {};
  body_.reset();
  trailers_.clear();
  error_.clear();
}

size_t H2Codec::input_room() const {
  const size_t held = in_.size() - in_pos_;
  return held >= kInputCap ? 0 : kInputCap - held;
}

void H2Codec::put_input(std::span<const uint8_t> data) {
  if (in_pos_ == in_.size()) {
    in_.clear();
    in_pos_ = 0;
  }
  in_.insert(in_.end(), data.begin(), data.end());
}

UpstreamCodec::Status H2Codec::fail(std::string why) {
  error_ = std::move(why);
  return Status::kError;
}

UpstreamCodec::Status H2Codec::decode(std::vector<uint8_t>& body, size_t max_body) {
  if (!error_.empty()) return Status::kError;
  if (done_) return Status::kDone;
  if (!head_produced_) {
    const auto rest = std::span<const uint8_t>(in_).subspan(in_pos_);
    tunnel::ResponseHead h;
    const auto e = reader_->feed(rest, h);
    in_pos_ = in_.size();
    if (e == tunnel::WireError::kNeedMore) {
      if (eof_) return fail("the upstream ended the stream before a response head");
      return Status::kNeedInput;
    }
    if (e != tunnel::WireError::kNone) return fail("bad response head from the " + protocol_ + " stream");
    const auto after = reader_->take_body();
    in_.assign(after.begin(), after.end());
    in_pos_ = 0;
    if (tunnel::is_interim(h.status)) {
      // 100, 103: handed on as they are (hop-by-hop fields dropped); the final head follows. An
      // extended CONNECT's are skipped: the RFC 6455 client waits for its 101 only.
      reader_.emplace();
      if (upgrade_) return decode(body, max_body);
      head_ = tunnel::ResponseHead{};
      head_.status = h.status;
      for (auto& [n, v] : h.headers) {
        if (!is_hop_by_hop(n)) head_.headers.emplace_back(std::move(n), std::move(v));
      }
      return Status::kHead;
    }
    if (h.framed) body_.emplace();
    if (h.status < 200 || h.status > 999)
      return fail("the upstream answered status " + std::to_string(h.status));
    tunnel::ResponseHead out;
    out.status = h.status;
    if (upgrade_ && h.status == 200) {
      // The extended CONNECT was accepted: the RFC 6455 client gets its 101.
      out.status = 101;
      out.has_body = true;
      out.headers.emplace_back("sec-websocket-accept", tunnel::websocket_accept(ws_key_));
      for (auto& [n, v] : h.headers) {
        if (n == "sec-websocket-protocol" || n == "sec-websocket-extensions") out.headers.emplace_back(n, v);
      }
      switched_ = true;
      head_ = std::move(out);
      head_produced_ = true;
      return Status::kHead;
    }
    body_allowed_ = h.has_body && !head_request_ && h.status != 204 && h.status != 304;
    for (auto& [n, v] : h.headers) {
      if (is_hop_by_hop(n)) continue;
      if (n == "content-length") {
        uint64_t len = 0;
        auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), len);
        if (ec != std::errc() || p != v.data() + v.size())
          return fail("the upstream sent a bad content-length");
        if (out.content_length && *out.content_length != len)
          return fail("the upstream sent two content-lengths");
        out.content_length = len;
        continue;
      }
      out.headers.emplace_back(std::move(n), std::move(v));
    }
    out.has_body = body_allowed_;
    // Without a body, a length only describes the representation (HEAD, 304).
    if (!body_allowed_ && !head_request_ && h.status != 304) out.content_length.reset();
    head_ = std::move(out);
    head_produced_ = true;
    return Status::kHead;
  }
  const size_t avail = in_.size() - in_pos_;
  if (avail > 0) {
    const size_t room = max_body > body.size() ? max_body - body.size() : 0;
    // A framed body yields at most as many data bytes as it is fed.
    const size_t n = std::min(avail, room);
    const auto piece = std::span<const uint8_t>(in_).subspan(in_pos_, n);
    pieces_.clear();
    if (body_) {
      if (body_->feed(piece, pieces_) != tunnel::WireError::kNone)
        return fail("bad framed body from the HTTP/2 stream");
    } else if (!piece.empty()) {
      pieces_.push_back(piece);
    }
    for (auto p : pieces_) {
      if (!p.empty() && !body_allowed_) return fail("the upstream sent a body where none is allowed");
      body.insert(body.end(), p.begin(), p.end());
    }
    in_pos_ += n;
    if (in_pos_ < in_.size()) return Status::kBodyFull;
  }
  if (eof_) {
    if (body_) {
      if (!body_->done()) return fail("the HTTP/2 stream ended inside its body");
      trailers_ = body_->take_trailers();
    }
    done_ = true;
    return Status::kDone;
  }
  return Status::kNeedInput;
}

}  // namespace wtmesh::agent
