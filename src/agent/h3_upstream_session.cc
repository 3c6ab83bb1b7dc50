#include "agent/h3_upstream_session.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <utility>

#include "h3/error_codes.h"

namespace wtmesh::agent {

namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

h3::Config h3_upstream_config(const H3UpstreamLimits& limits) {
  h3::Config c;
  c.max_field_section_size = limits.max_header_bytes;
  c.local.max_field_section_size = limits.max_header_bytes;
  return c;
}

H3UpstreamSession::H3UpstreamSession(h3::Connection& h3, H3UpstreamLimits limits)
    : h3_(h3), limits_(limits) {}

void H3UpstreamSession::set_error(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  for (auto& [id, s] : streams_) mark(id);
  mark_connection();
}

bool H3UpstreamSession::can_open() const {
  if (failed() || goaway_ || !settings_received_ || blocked_) return false;
  if (streams_.size() >= limits_.max_streams) return false;
  return !streams_left_ || streams_left_() > 0;
}

void H3UpstreamSession::shutdown() {
  if (failed()) return;
  goaway_ = true;
  h3_.send_goaway(0);
}

bool H3UpstreamSession::take_connection_changed() { return std::exchange(connection_changed_, false); }

H3UpstreamSession::Stream* H3UpstreamSession::find(int64_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

const H3UpstreamSession::Stream* H3UpstreamSession::find(int64_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

void H3UpstreamSession::mark(int64_t id) {
  changed_.push_back(id);
  if (on_event_) on_event_();
}

void H3UpstreamSession::mark_connection() {
  connection_changed_ = true;
  if (on_event_) on_event_();
}

std::optional<int64_t> H3UpstreamSession::open(const tunnel::HeaderPairs& fields, bool end_stream,
                                               std::string* error) {
  auto bad = [&](std::string why) -> std::optional<int64_t> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  if (failed()) return bad(error_);
  if (goaway_) return bad("the HTTP/3 upstream connection is going away");
  h3::HeaderList headers;
  headers.reserve(fields.size());
  for (const auto& [n, v] : fields) headers.push_back({n, v});
  const auto id = h3_.send_request(headers, end_stream);
  if (!id) {
    blocked_ = true;
    return bad("the HTTP/3 upstream's stream limit was reached");
  }
  streams_[static_cast<int64_t>(*id)] = std::make_unique<Stream>();
  return static_cast<int64_t>(*id);
}

size_t H3UpstreamSession::send(int64_t id, std::span<const uint8_t> data, bool fin) {
  const Stream* s = find(id);
  if (s == nullptr || s->reset || s->closed || failed()) return 0;
  return h3_.send_body(static_cast<h3::StreamId>(id), data, fin);
}

std::vector<MuxHead> H3UpstreamSession::take_interim(int64_t id) {
  Stream* s = find(id);
  return s == nullptr ? std::vector<MuxHead>{} : std::exchange(s->interim, {});
}

tunnel::HeaderPairs H3UpstreamSession::take_trailers(int64_t id) {
  Stream* s = find(id);
  return s == nullptr ? tunnel::HeaderPairs{} : std::exchange(s->trailers, {});
}

std::optional<MuxHead> H3UpstreamSession::take_head(int64_t id) {
  Stream* s = find(id);
  if (s == nullptr || !s->head_ready || s->head_taken) return std::nullopt;
  s->head_taken = true;
  return std::move(s->head);
}

std::span<const uint8_t> H3UpstreamSession::received(int64_t id) const {
  const Stream* s = find(id);
  if (s == nullptr || !s->head_taken) return {};
  return std::span<const uint8_t>(s->in).subspan(s->in_pos);
}

void H3UpstreamSession::consume(int64_t id, size_t n) {
  Stream* s = find(id);
  if (s == nullptr) return;
  n = std::min(n, s->in.size() - s->in_pos);
  s->in_pos += n;
  if (s->in_pos == s->in.size()) {
    s->in.clear();
    s->in_pos = 0;
  }
  h3_.consume(static_cast<h3::StreamId>(id), n);
}

bool H3UpstreamSession::finished(int64_t id) const {
  const Stream* s = find(id);
  return s != nullptr && s->head_taken && s->ended && s->error.empty() && s->in_pos == s->in.size();
}

std::optional<std::string> H3UpstreamSession::failure(int64_t id, bool* refused) const {
  const Stream* s = find(id);
  if (refused) *refused = false;
  if (s == nullptr) return std::string("the HTTP/3 stream is gone");
  if (!s->error.empty()) return s->error;
  if (s->ended) return std::nullopt;
  if (s->refused) {
    if (refused) *refused = true;
    return std::string("the HTTP/3 upstream refused the request (GOAWAY or H3_REQUEST_REJECTED)");
  }
  if (s->reset) {
    return "the HTTP/3 upstream reset the stream (" + std::string(h3::error_code_name(s->reset_code)) + ", " +
           hex(s->reset_code) + ")";
  }
  if (failed()) return error_;
  if (s->closed) return std::string("the HTTP/3 stream closed before the response ended");
  return std::nullopt;
}

// Cancelled: H3_REQUEST_CANCELLED both ways. Forgotten after the response ended: if our request side
// is still open (the server answered early), the request is not wanted any more (H3_NO_ERROR).
void H3UpstreamSession::cancel(int64_t id) { drop(id, h3::kH3RequestCancelled); }

void H3UpstreamSession::forget(int64_t id) { drop(id, h3::kH3NoError); }

void H3UpstreamSession::drop(int64_t id, uint64_t h3_error) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  Stream& s = *it->second;
  // Unconsumed bytes still hold connection credit.
  if (s.in.size() > s.in_pos) h3_.consume(static_cast<h3::StreamId>(id), s.in.size() - s.in_pos);
  if (!s.closed && !failed()) h3_.reset_request(static_cast<h3::StreamId>(id), h3_error);
  streams_.erase(it);
  mark_connection();
}

std::vector<int64_t> H3UpstreamSession::take_changed() {
  std::vector<int64_t> out;
  out.swap(changed_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// --- h3::Handler: record, mark ------------------------------------------------------------------------

void H3UpstreamSession::on_peer_settings(const h3::Settings& peer) {
  settings_received_ = true;
  connect_protocol_ = peer.enable_connect_protocol;
  mark_connection();
}

void H3UpstreamSession::on_headers(h3::StreamId sid, h3::HeaderList headers, bool fin) {
  const auto id = static_cast<int64_t>(sid);
  Stream* s = find(id);
  if (s == nullptr) return;
  if (s->head_ready) {  // the trailing HEADERS
    for (auto& h : headers) {
      if (!h.name.empty() && h.name[0] != ':') s->trailers.emplace_back(std::move(h.name), std::move(h.value));
    }
    if (fin) s->ended = true;
    return mark(id);
  }
  const std::string* status = h3::find_header(headers, ":status");
  int code = 0;
  if (status == nullptr || status->size() != 3 ||
      std::from_chars(status->data(), status->data() + 3, code).ec != std::errc() || code < 100 ||
      code > 599) {
    s->error = "the HTTP/3 upstream sent a response without a valid :status";
    h3_.reset_request(sid, h3::kH3MessageError);
    return mark(id);
  }
  if (code < 200) {
    if (fin) {
      s->error = "the HTTP/3 upstream ended the stream after an interim response";
      return mark(id);
    }
    if (code != 101 && s->interim.size() < tunnel::kMaxInterimHeads) {  // more are dropped
      MuxHead ih;
      ih.status = code;
      for (auto& h : headers) {
        if (!h.name.empty() && h.name[0] != ':') ih.headers.emplace_back(std::move(h.name), std::move(h.value));
      }
      s->interim.push_back(std::move(ih));
      mark(id);
    }
    return;
  }
  s->head.status = code;
  for (auto& h : headers) {
    if (!h.name.empty() && h.name[0] == ':') continue;
    s->head.headers.emplace_back(std::move(h.name), std::move(h.value));
  }
  s->head.end_stream = fin;
  s->head_ready = true;
  if (fin) s->ended = true;
  mark(id);
}

void H3UpstreamSession::on_body(h3::StreamId sid, std::span<const uint8_t> data, bool fin) {
  const auto id = static_cast<int64_t>(sid);
  Stream* s = find(id);
  if (s == nullptr || !s->head_ready) {
    // A forgotten stream's late bytes (or DATA before a head, which h3 rejects): credit them at once.
    h3_.consume(sid, data.size());
    return;
  }
  s->in.insert(s->in.end(), data.begin(), data.end());
  if (fin) s->ended = true;
  mark(id);
}

void H3UpstreamSession::on_request_reset(h3::StreamId sid, uint64_t h3_error) {
  const auto id = static_cast<int64_t>(sid);
  Stream* s = find(id);
  if (s == nullptr) return;
  s->reset = true;
  s->reset_code = h3_error;
  // Nothing of the response arrived and the peer says it did not process the request.
  if (h3_error == h3::kH3RequestRejected && !s->head_ready) s->refused = true;
  mark(id);
}

void H3UpstreamSession::on_request_writable(h3::StreamId sid) { mark(static_cast<int64_t>(sid)); }

void H3UpstreamSession::on_request_closed(h3::StreamId sid) {
  const auto id = static_cast<int64_t>(sid);
  Stream* s = find(id);
  if (s == nullptr) return;
  s->closed = true;
  mark(id);
}

void H3UpstreamSession::on_goaway(uint64_t last) {
  goaway_ = true;
  goaway_id_ = last;
  // Requests on streams at or above the id were not processed (RFC 9114 §5.2).
  for (auto& [id, s] : streams_) {
    if (static_cast<uint64_t>(id) >= last && !s->head_ready) {
      s->refused = true;
      mark(id);
    }
  }
  mark_connection();
}

void H3UpstreamSession::on_streams_available() {
  blocked_ = false;
  mark_connection();
}

void H3UpstreamSession::on_connection_closed(uint64_t error_code, bool is_application,
                                             std::string_view reason) {
  std::string why = "the HTTP/3 upstream connection closed";
  if (!reason.empty()) {
    why += ": " + std::string(reason);
  } else if (is_application && error_code != h3::kH3NoError) {
    why += " (" + std::string(h3::error_code_name(error_code)) + ")";
  }
  set_error(std::move(why));
}

}  // namespace wtmesh::agent
