#include "agent/h2_upstream_session.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "agent/h2_nv.h"

namespace wtmesh::agent {

namespace {

using Self = H2UpstreamSession;

Self& self_of(void* user_data) { return *static_cast<Self*>(user_data); }

int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  if (frame->hd.type != NGHTTP2_HEADERS) return 0;
  if (auto* s = self_of(ud).stream(frame->hd.stream_id); s && s->head_ready) {
    s->in_trailers = true;
    s->header_bytes = 0;  // the trailer section has the same cap as the head
  }
  return 0;
}

int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
              const uint8_t* value, size_t valuelen, uint8_t, void* ud) {
  auto& self = self_of(ud);
  auto* s = self.stream(frame->hd.stream_id);
  if (s == nullptr) return 0;
  const std::string_view n(reinterpret_cast<const char*>(name), namelen);
  const std::string_view v(reinterpret_cast<const char*>(value), valuelen);
  s->header_bytes += namelen + valuelen + 32;
  if (s->header_bytes > self.limits().max_header_bytes) {
    s->too_large = true;
    s->fields.clear();
    s->trailers.clear();
    return 0;
  }
  if (s->in_trailers) {
    // Trailers (gRPC's grpc-status): forwarded when the tunnel session has the `trailers` feature.
    if (!n.starts_with(':') && !s->too_large) s->trailers.emplace_back(n, v);
    return 0;
  }
  if (n == ":status") {
    int st = 0;
    for (char c : v) st = st * 10 + (c - '0');  // nghttp2 checked it is three digits
    s->status = st;
  } else if (!n.starts_with(':') && !s->too_large) {
    s->fields.emplace_back(n, v);
  }
  return 0;
}

int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* ud) {
  auto& self = self_of(ud);
  switch (frame->hd.type) {
    case NGHTTP2_SETTINGS:
      if ((frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) self.on_settings();
      return 0;
    case NGHTTP2_GOAWAY:
      self.on_goaway(frame->goaway.last_stream_id);
      return 0;
    case NGHTTP2_HEADERS:
    case NGHTTP2_DATA:
      break;
    default:
      return 0;
  }
  auto* s = self.stream(frame->hd.stream_id);
  if (s == nullptr) return 0;
  const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
  if (frame->hd.type == NGHTTP2_HEADERS && !s->in_trailers && !s->head_ready) {
    if (s->status >= 100 && s->status < 200 && !end) {
      // An interim response (100, 103): kept for take_interim() (at most kMaxInterim, then dropped).
      if (s->interim.size() < Self::kMaxInterim) s->interim.push_back(Self::Head{s->status, std::move(s->fields), false});
      s->fields.clear();
      s->header_bytes = 0;
      s->status = 0;
    } else {
      s->head_ready = true;
      s->head_end_stream = end;
    }
  }
  if (end) s->ended = true;
  self.mark(frame->hd.stream_id);
  return 0;
}

int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len, void* ud) {
  auto& self = self_of(ud);
  if (auto* s = self.stream(stream_id)) {
    s->in.insert(s->in.end(), data, data + len);
    self.mark(stream_id);
  } else {
    self.discard(len);
  }
  return 0;
}

int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t error_code, void* ud) {
  auto& self = self_of(ud);
  if (auto* s = self.stream(stream_id)) {
    s->closed = true;
    s->close_code = error_code;
    self.mark(stream_id);
  }
  return 0;
}

ssize_t read_body(nghttp2_session*, int32_t stream_id, uint8_t* buf, size_t length, uint32_t* flags,
                  nghttp2_data_source*, void* ud) {
  auto& self = self_of(ud);
  auto* s = self.stream(stream_id);
  if (s == nullptr) return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  const size_t n = std::min(length, s->out.size() - s->out_pos);
  if (n > 0) std::memcpy(buf, s->out.data() + s->out_pos, n);  // an empty vector's data() may be null
  s->out_pos += n;
  if (s->out_pos == s->out.size()) {
    s->out.clear();
    s->out_pos = 0;
  }
  if (n > 0) self.mark(stream_id);  // send room grew
  if (s->out.empty() && s->out_fin) {
    *flags |= NGHTTP2_DATA_FLAG_EOF;
    if (!s->out_trailers.empty()) {  // the trailing HEADERS ends the stream; submitted after the call
      *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
      s->trailers_due = true;
      self.note_trailers_due();
    }
  } else if (n == 0) {
    s->deferred = true;
    return NGHTTP2_ERR_DEFERRED;
  }
  return static_cast<ssize_t>(n);
}

}  // namespace

H2UpstreamSession::H2UpstreamSession(H2UpstreamLimits limits) : limits_(limits) {
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_peer_max_concurrent_streams(opt, limits_.max_streams);
  const int rv = nghttp2_session_client_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);
  if (rv != 0) {
    session_ = nullptr;
    set_error(std::string("nghttp2_session_client_new: ") + nghttp2_strerror(rv));
    return;
  }
  const nghttp2_settings_entry settings[] = {
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, limits_.max_streams},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits_.stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(limits_.max_header_bytes)},
  };
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings, std::size(settings));
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0, limits_.connection_window);
}

H2UpstreamSession::~H2UpstreamSession() {
  if (session_) nghttp2_session_del(session_);
}

void H2UpstreamSession::set_error(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  for (auto& [id, s] : streams_) mark(id);
}

void H2UpstreamSession::on_goaway(int32_t last_stream_id) {
  goaway_ = true;
  goaway_last_ = last_stream_id;
}

H2UpstreamSession::Stream* H2UpstreamSession::stream(int32_t id) {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

const H2UpstreamSession::Stream* H2UpstreamSession::find(int32_t id) const {
  auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

bool H2UpstreamSession::feed(std::span<const uint8_t> data) {
  if (failed()) return false;
  const ssize_t rv = nghttp2_session_mem_recv(session_, data.data(), data.size());
  if (rv < 0) {
    set_error(std::string("HTTP/2 error from the upstream: ") + nghttp2_strerror(static_cast<int>(rv)));
    return false;
  }
  if (discard_ > 0) nghttp2_session_consume_connection(session_, std::exchange(discard_, 0));
  // After the library returned: streams whose header section was too large are reset.
  for (auto& [id, s] : streams_) {
    if (s->too_large && !s->closed) {
      nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_REFUSED_STREAM);
      s->closed = true;
      s->close_code = NGHTTP2_INTERNAL_ERROR;
      mark(id);
    }
  }
  check_over();
  return !failed();
}

void H2UpstreamSession::check_over() {
  // nghttp2 answers a protocol error with GOAWAY and then stops reading: the connection is over.
  if (session_ && !failed() && !nghttp2_session_want_read(session_)) {
    set_error(goaway_ ? "the upstream ended the HTTP/2 connection (GOAWAY)"
                      : "HTTP/2 protocol error from the upstream (not an HTTP/2 server?)");
  }
}

void H2UpstreamSession::feed_eof() {
  eof_ = true;
  if (!streams_.empty()) set_error("the upstream closed the connection");
}

bool H2UpstreamSession::want_read() const {
  return session_ && !eof_ && !failed() && nghttp2_session_want_read(session_);
}

void H2UpstreamSession::fill_output() {
  if (!session_ || failed()) return;
  if (out_pos_ == out_.size()) {
    out_.clear();
    out_pos_ = 0;
  }
  while (out_.size() - out_pos_ < limits_.max_output) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      set_error(std::string("HTTP/2 send error: ") + nghttp2_strerror(static_cast<int>(n)));
      return;
    }
    if (n == 0) {
      if (!trailers_due_) break;
      submit_due_trailers();
      if (failed()) return;
      continue;
    }
    out_.insert(out_.end(), data, data + n);
  }
  check_over();
}

// Request trailers whose last DATA went out (read_body saw the end): their HEADERS with END_STREAM.
void H2UpstreamSession::submit_due_trailers() {
  trailers_due_ = false;
  for (auto& [id, s] : streams_) {
    if (!s->trailers_due) continue;
    s->trailers_due = false;
    const auto trailers = std::exchange(s->out_trailers, {});
    std::vector<nghttp2_nv> nva;
    nva.reserve(trailers.size());
    for (const auto& [n, v] : trailers) nva.push_back(nv(n, v));
    if (const int rv = nghttp2_submit_trailer(session_, id, nva.data(), nva.size()); rv != 0) {
      return set_error(std::string("cannot submit the request's trailers: ") + nghttp2_strerror(rv));
    }
  }
}

std::span<const uint8_t> H2UpstreamSession::output() {
  fill_output();
  return std::span<const uint8_t>(out_).subspan(out_pos_);
}

void H2UpstreamSession::consume_output(size_t n) { out_pos_ = std::min(out_.size(), out_pos_ + n); }

void H2UpstreamSession::shutdown() {
  if (session_ && !failed()) nghttp2_session_terminate_session(session_, NGHTTP2_NO_ERROR);
}

bool H2UpstreamSession::connect_protocol() const {
  return session_ &&
         nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL) == 1;
}

bool H2UpstreamSession::can_open() const {
  if (!session_ || failed() || goaway_ || eof_) return false;
  const uint32_t peer =
      nghttp2_session_get_remote_settings(session_, NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS);
  return streams_.size() < std::min(peer, limits_.max_streams) &&
         nghttp2_session_get_next_stream_id(session_) < (1u << 31) - 2;
}

int32_t H2UpstreamSession::open(const tunnel::HeaderPairs& fields, bool end_stream, std::string* error) {
  std::vector<nghttp2_nv> nva;
  nva.reserve(fields.size());
  for (const auto& [n, v] : fields) nva.push_back(nv(n, v));
  nghttp2_data_provider prd{};
  prd.read_callback = read_body;
  const int32_t id =
      nghttp2_submit_request(session_, nullptr, nva.data(), nva.size(), end_stream ? nullptr : &prd, nullptr);
  if (id < 0) {
    if (error) *error = std::string("cannot submit the HTTP/2 request: ") + nghttp2_strerror(id);
    return 0;
  }
  streams_[id] = std::make_unique<Stream>();
  if (end_stream) streams_[id]->out_fin = true;
  return id;
}

size_t H2UpstreamSession::send_room(int32_t id) const {
  const Stream* s = find(id);
  if (!s || s->out_fin || s->closed) return 0;
  const size_t held = s->out.size() - s->out_pos;
  return held >= limits_.max_send_buffer ? 0 : limits_.max_send_buffer - held;
}

size_t H2UpstreamSession::send(int32_t id, std::span<const uint8_t> data, bool fin) {
  Stream* s = stream(id);
  if (!s || s->out_fin || s->closed) return 0;
  const size_t n = std::min(data.size(), send_room(id));
  s->out.insert(s->out.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(n));
  if (fin && n == data.size()) s->out_fin = true;
  if (s->deferred && (n > 0 || s->out_fin)) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, id);
  }
  return n;
}

bool H2UpstreamSession::send_trailers(int32_t id, const tunnel::HeaderPairs& trailers) {
  Stream* s = stream(id);
  if (!s || s->out_fin || s->closed || trailers.empty()) return false;
  s->out_trailers = trailers;
  s->out_fin = true;
  if (s->deferred) {
    s->deferred = false;
    nghttp2_session_resume_data(session_, id);
  }
  return true;
}

std::optional<H2UpstreamSession::Head> H2UpstreamSession::take_head(int32_t id) {
  Stream* s = stream(id);
  if (!s || !s->head_ready || s->head_taken) return std::nullopt;
  s->head_taken = true;
  Head h;
  h.status = s->status;
  h.headers = std::move(s->fields);
  h.end_stream = s->head_end_stream;
  return h;
}

std::vector<H2UpstreamSession::Head> H2UpstreamSession::take_interim(int32_t id) {
  Stream* s = stream(id);
  if (!s) return {};
  return std::exchange(s->interim, {});
}

tunnel::HeaderPairs H2UpstreamSession::take_trailers(int32_t id) {
  Stream* s = stream(id);
  if (!s) return {};
  return std::exchange(s->trailers, {});
}

std::span<const uint8_t> H2UpstreamSession::received(int32_t id) const {
  const Stream* s = find(id);
  if (!s) return {};
  return std::span<const uint8_t>(s->in).subspan(s->in_pos);
}

void H2UpstreamSession::consume(int32_t id, size_t n) {
  Stream* s = stream(id);
  if (!s) return;
  n = std::min(n, s->in.size() - s->in_pos);
  s->in_pos += n;
  if (s->in_pos == s->in.size()) {
    s->in.clear();
    s->in_pos = 0;
  }
  if (n > 0) nghttp2_session_consume(session_, id, n);
}

bool H2UpstreamSession::finished(int32_t id) const {
  const Stream* s = find(id);
  return s && s->ended && s->head_taken && s->in_pos == s->in.size();
}

std::optional<std::string> H2UpstreamSession::failure(int32_t id, bool* refused) const {
  if (refused) *refused = false;
  const Stream* s = find(id);
  if (!s) return "the HTTP/2 stream is gone";
  if (s->too_large) {
    return "response header section over " + std::to_string(limits_.max_header_bytes) + " bytes";
  }
  if (s->ended) return std::nullopt;
  if (s->closed) {
    if (refused) *refused = s->close_code == NGHTTP2_REFUSED_STREAM;
    return std::string("the upstream reset the HTTP/2 stream (") + nghttp2_http2_strerror(s->close_code) +
           ")";
  }
  if (failed()) return error_;
  return std::nullopt;
}

void H2UpstreamSession::cancel(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  if (session_ && !it->second->closed)
    nghttp2_submit_rst_stream(session_, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
  forget(id);
}

void H2UpstreamSession::forget(int32_t id) {
  auto it = streams_.find(id);
  if (it == streams_.end()) return;
  // Bytes the exchange never took still count against the connection's window.
  const size_t unread = it->second->in.size() - it->second->in_pos;
  if (session_ && unread > 0) nghttp2_session_consume_connection(session_, unread);
  streams_.erase(it);
}

std::vector<int32_t> H2UpstreamSession::take_changed() {
  std::vector<int32_t> out;
  out.swap(changed_);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace wtmesh::agent
