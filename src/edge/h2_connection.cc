#include "edge/h2_connection.h"

#include <nghttp2/nghttp2.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "edge/h2_stream.h"

namespace wtmesh::edge {
namespace {

std::string_view view(const uint8_t* p, size_t n) { return {reinterpret_cast<const char*>(p), n}; }

}  // namespace

// nghttp2 callbacks: they record into the connection's streams and return; nothing else.
struct H2Connection::Callbacks {
  static H2Connection& conn(void* user) { return *static_cast<H2Connection*>(user); }

  static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_HEADERS && frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
      auto& c = conn(user);
      c.streams_.emplace(frame->hd.stream_id, std::make_unique<Stream>(c, frame->hd.stream_id));
    }
    return 0;
  }
  static int on_header(nghttp2_session*, const nghttp2_frame* frame, const uint8_t* name, size_t namelen,
                       const uint8_t* value, size_t valuelen, uint8_t, void* user) {
    auto& c = conn(user);
    ++c.header_fields_;
    Stream* s = c.find(frame->hd.stream_id);
    if (s == nullptr || s->on_header(view(name, namelen), view(value, valuelen))) return 0;
    // A header bomb: nghttp2 resets the stream (INTERNAL_ERROR) and only decodes the rest of the
    // block (HPACK state), without validating each field or calling us again. It counts as one of
    // the edge's own answers in a row (max_local_answers: then GOAWAY, from step()).
    ++c.local_answers_;
    c.header_bombs_++;
    return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_SETTINGS && (frame->hd.flags & NGHTTP2_FLAG_ACK) == 0) {
      // nghttp2 ignores ids it does not know: the client's WebTransport SETTINGS are read here.
      auto& c = conn(user);
      for (size_t i = 0; i < frame->settings.niv; ++i) {
        const nghttp2_settings_entry& e = frame->settings.iv[i];
        if (e.settings_id <= 0xffff) c.peer_wt_.apply(static_cast<uint16_t>(e.settings_id), e.value);
      }
      return 0;
    }
    Stream* s = conn(user).find(frame->hd.stream_id);
    if (s == nullptr) return 0;
    const bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    if (frame->hd.type == NGHTTP2_HEADERS) {
      s->on_head_done(end);
    } else if (frame->hd.type == NGHTTP2_DATA && end) {
      s->on_end_stream();
    }
    return 0;
  }
  static int on_data_chunk(nghttp2_session*, uint8_t, int32_t stream_id, const uint8_t* data, size_t len,
                           void* user) {
    auto& c = conn(user);
    if (Stream* s = c.find(stream_id)) {
      s->on_data({data, len});
    } else {
      c.unowned_ += len;
    }
    return 0;
  }
  static int on_frame_send(nghttp2_session*, const nghttp2_frame* frame, void* user) {
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
      auto& c = conn(user);
      if (c.goaway_code_ == 0) c.goaway_code_ = frame->goaway.error_code;
      return 0;
    }
    if ((frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0) {
      auto& c = conn(user);
      if (Stream* s = c.find(frame->hd.stream_id)) {
        s->on_end_stream_sent();
        c.step_pending_ = true;  // a reset may wait for the response to be out
      }
    }
    return 0;
  }
  static int on_stream_close(nghttp2_session*, int32_t stream_id, uint32_t code, void* user) {
    auto& c = conn(user);
    if (Stream* s = c.find(stream_id)) {
      s->on_closed(code);
      c.step_pending_ = true;
    }
    return 0;
  }
  static int on_error(nghttp2_session*, int, const char* msg, size_t len, void* user) {
    auto& c = conn(user);
    if (c.error_.empty()) c.error_.assign(msg, len);
    return 0;
  }
};

H2Connection::H2Connection(TunnelDirectory& directory, H2Config config, ConnectionHooks hooks)
    : dir_(directory), config_(std::move(config)), hooks_(std::move(hooks)) {
  started_ = now();
  nghttp2_session_callbacks* cbs = nullptr;
  nghttp2_session_callbacks_new(&cbs);
  nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, &Callbacks::on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cbs, &Callbacks::on_header);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, &Callbacks::on_frame_recv);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, &Callbacks::on_data_chunk);
  nghttp2_session_callbacks_set_on_frame_send_callback(cbs, &Callbacks::on_frame_send);
  nghttp2_session_callbacks_set_on_stream_close_callback(cbs, &Callbacks::on_stream_close);
  nghttp2_session_callbacks_set_error_callback2(cbs, &Callbacks::on_error);
  nghttp2_option* opt = nullptr;
  nghttp2_option_new(&opt);
  nghttp2_option_set_no_auto_window_update(opt, 1);
  nghttp2_option_set_max_continuations(opt, config_.max_continuations);
  nghttp2_option_set_stream_reset_rate_limit(opt, config_.reset_burst, config_.reset_rate);
  nghttp2_session_server_new2(&session_, cbs, this, opt);
  nghttp2_option_del(opt);
  nghttp2_session_callbacks_del(cbs);

  std::vector<nghttp2_settings_entry> settings{{
      {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, static_cast<uint32_t>(limits().h2_max_concurrent_streams)},
      {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, static_cast<uint32_t>(limits().h2_stream_window)},
      {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<uint32_t>(config_.max_header_bytes)},
      {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
      // RFC 8441: extended CONNECT (WebSocket). nghttp2 1.52 has no option for it: it checks an
      // incoming :protocol against this value as submitted (pending_enable_connect_protocol, before
      // the client's ACK), accepts it only on a CONNECT with :scheme, :path and :authority, and
      // refuses it (a malformed request, RST_STREAM) on any other.
      {NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL, 1},
  }};
  if (config_.webtransport_acceptor) {
    // draft-ietf-webtrans-http2-15 §3.1, §4.3.1: SETTINGS_WT_ENABLED = 1 and our initial limits.
    config_.webtransport.local.wt_enabled = 1;
    for (const auto& [id, value] : config_.webtransport.local.entries()) settings.push_back({id, value});
  }
  nghttp2_submit_settings(session_, NGHTTP2_FLAG_NONE, settings.data(), settings.size());
  nghttp2_session_set_local_window_size(session_, NGHTTP2_FLAG_NONE, 0,
                                        static_cast<int32_t>(limits().h2_connection_window));
  flush();
}

H2Connection::~H2Connection() {
  for (auto& [id, s] : streams_) s->cancel_silently();
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  nghttp2_session_del(session_);
}

SteadyTime H2Connection::now() const {
  return config_.exchange.clock ? config_.exchange.clock() : std::chrono::steady_clock::now();
}

H2Connection::Stream* H2Connection::find(int32_t id) const {
  const auto it = streams_.find(id);
  return it == streams_.end() ? nullptr : it->second.get();
}

size_t H2Connection::webtransport_sessions() const {
  return static_cast<size_t>(std::count_if(streams_.begin(), streams_.end(),
                                           [](const auto& s) { return s.second->webtransport(); }));
}

void H2Connection::on_wake() {
  bury();
  if (std::exchange(wt_wake_, false) && !finished_) process();
}

std::optional<PublicShed> H2Connection::shed() const {
  if (recv_error_ == NGHTTP2_ERR_FLOODED) return PublicShed::kH2Flood;
  if (recv_error_ == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS) return PublicShed::kH2Continuations;
  if (recv_error_ != 0) return PublicShed::kH2ProtocolError;
  // We only ever send NO_ERROR; nghttp2's reset rate limit says INTERNAL_ERROR.
  if (goaway_code_ == NGHTTP2_INTERNAL_ERROR) return PublicShed::kH2ResetRate;
  if (goaway_code_ != 0) return PublicShed::kH2ProtocolError;
  if (goaway_for_answers_) return PublicShed::kH2LocalAnswers;
  return std::nullopt;
}

bool H2Connection::upgraded() const {
  return std::any_of(streams_.begin(), streams_.end(), [](const auto& s) { return s.second->upgraded(); });
}

size_t H2Connection::buffered_input() const {
  size_t n = 0;
  for (const auto& [id, s] : streams_) n += s->buffered();
  return n;
}

// --- client side ----------------------------------------------------------------------------------

void H2Connection::bury() { graveyard_.clear(); }

size_t H2Connection::on_client_bytes(std::span<const uint8_t> data) {
  bury();
  if (finished_) return data.size();
  // A client that does not read its responses is not read either (its requests wait in the socket).
  if (out_.size() >= limits().max_pending_output) return 0;
  const ssize_t n = nghttp2_session_mem_recv(session_, data.data(), data.size());
  if (n < 0) {
    recv_error_ = static_cast<int>(n);
    fail(nghttp2_strerror(static_cast<int>(n)));
    return data.size();
  }
  process();
  return static_cast<size_t>(n);
}

void H2Connection::on_client_eof() { abort("client closed the connection"); }

void H2Connection::abort(std::string_view why) {
  bury();
  if (finished_) return;
  finished_ = true;
  for (auto& [id, s] : streams_) {
    if (auto o = s->cancel(why)) log(*s, o->status, o->note);
  }
  for (const auto& c : credits_) dir_.consume(c.ref, c.n);
  credits_.clear();
  out_base_ += out_.size();
  out_.clear();
}

void H2Connection::on_client_written(size_t n) {
  bury();
  n = std::min(n, out_.size());
  const bool was_full = out_.size() >= limits().max_pending_output;
  out_.consume(n);
  out_base_ += n;
  while (!credits_.empty() && credits_.front().end <= out_base_) {
    dir_.consume(credits_.front().ref, credits_.front().n);
    credits_.pop_front();
  }
  if (was_full || nghttp2_session_want_write(session_)) process();
  if (out_.empty()) out_.release_if_empty();
}

void H2Connection::fail(std::string why) {
  if (error_.empty()) error_ = std::move(why);
  flush();  // nghttp2 may have queued a GOAWAY that says why
  for (auto& [id, s] : streams_) {
    if (auto o = s->cancel(error_)) log(*s, o->status, o->note);
  }
  finished_ = true;
}

void H2Connection::goaway() {
  if (goaway_sent_) return;
  goaway_sent_ = true;
  goaway_for_answers_ = local_answers_ >= limits().max_local_answers;
  nghttp2_submit_goaway(session_, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(session_),
                        NGHTTP2_NO_ERROR, nullptr, 0);
}

void H2Connection::drain() {
  if (finished_ || draining_) return;
  draining_ = true;
  // RFC 9113 §6.8: a GOAWAY with the largest stream id first, so requests the client is sending now
  // are still taken; the final one (the last stream id processed) kDrainNotice later.
  if (goaway_sent_) return process();
  nghttp2_submit_shutdown_notice(session_);
  drain_final_at_ = now() + kDrainNotice;
  process();
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> H2Connection::next_deadline() const {
  if (finished_) return std::nullopt;
  std::optional<SteadyTime> d;
  if (!seen_request_) d = started_ + limits().header_timeout;
  if (drain_final_at_ && (!d || *drain_final_at_ < *d)) d = drain_final_at_;
  for (const auto& [id, s] : streams_) {
    if (auto t = s->next_deadline(); t && (!d || *t < *d)) d = t;
  }
  return d;
}

void H2Connection::on_tick(SteadyTime t) {
  bury();
  if (finished_) return;
  if (!seen_request_ && t >= started_ + limits().header_timeout) {
    finished_ = true;  // no request came: close silently, as on HTTP/1.1
    return;
  }
  if (drain_final_at_ && t >= *drain_final_at_) {
    drain_final_at_.reset();
    goaway();
  }
  for (auto& [id, s] : streams_) s->on_tick(t);
  process();
}

// --- the exchanges --------------------------------------------------------------------------------

void H2Connection::process() {
  if (in_process_) {
    again_ = true;
    return;
  }
  in_process_ = true;
  do {
    again_ = false;
    step();
  } while (again_ && !finished_);
  in_process_ = false;
}

void H2Connection::step() {
  if (finished_) return;
  if (unowned_ > 0) {
    nghttp2_session_consume_connection(session_, unowned_);
    unowned_ = 0;
  }
  for (auto it = streams_.begin(); it != streams_.end();) {
    if (it->second->step()) {
      ++it;
    } else {
      // Not destroyed here: process() also runs from a stream's own exchange_progress(), with that
      // stream and its exchange on the stack. The glue's next call frees it (bury()).
      graveyard_.push_back(std::move(it->second));
      it = streams_.erase(it);
    }
  }
  if (local_answers_ >= limits().max_local_answers) goaway();
  flush();
  // Streams nghttp2 closed while it wrote (the response's END_STREAM ended them) are forgotten next,
  // and a stream whose response went out while the client still sends is reset.
  if (std::exchange(step_pending_, false)) again_ = true;
  if (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_)) finished_ = true;
  // Draining: the GOAWAY went out and the last stream ended (nghttp2 would go on reading).
  if (draining_ && goaway_sent_ && streams_.empty() && !nghttp2_session_want_write(session_))
    finished_ = true;
}

void H2Connection::flush() {
  while (out_.size() < limits().max_pending_output) {
    const uint8_t* data = nullptr;
    const ssize_t n = nghttp2_session_mem_send(session_, &data);
    if (n < 0) {
      if (error_.empty()) error_ = nghttp2_strerror(static_cast<int>(n));
      finished_ = true;
      return;
    }
    if (n == 0) break;
    out_.append({data, static_cast<size_t>(n)});
    for (const auto& [ref, k] : copied_) credits_.push_back(Credit{out_base_ + out_.size(), ref, k});
    copied_.clear();
  }
}

void H2Connection::log(const Stream& s, int status, std::string note) {
  if (!hooks_.log) return;
  hooks_.log(make_request_log(s.method_, s.host_, s.target_, status, s.bytes(), now() - s.started_,
                              std::move(note), "HTTP/2"));
}

}  // namespace wtmesh::edge
