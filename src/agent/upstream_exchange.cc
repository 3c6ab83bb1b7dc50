#include "agent/upstream_exchange.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "tunnel/framed_body.h"

namespace wtmesh::agent {

using tunnel::kStreamCancelled;
using tunnel::kStreamProtocolError;
using tunnel::kStreamUpstreamFailed;

UpstreamExchange::UpstreamExchange(wt::Session& session, wt::StreamId id, UpstreamTransport& transport,
                                   std::unique_ptr<UpstreamCodec> codec, tunnel::RequestHead head,
                                   DoneFn done, ExchangeLimits limits)
    : session_(&session),
      id_(id),
      transport_(transport),
      codec_(std::move(codec)),
      head_(std::move(head)),
      done_(std::move(done)),
      limits_(limits),
      read_size_(limits.read_chunk, limits.max_read_chunk) {
  result_.method = head_.method;
  result_.target = head_.target;
}

void UpstreamExchange::start(std::span<const uint8_t> early_body, bool fin) {
  std::string error;
  if (!codec_->start_request(head_, &error)) {
    session_->consume(id_, early_body.size());
    protocol_error("request head cannot be forwarded: " + error);
    return;
  }
  on_body(early_body, fin);
  if (aborted_) return;
  connect();
}

// --- request side -----------------------------------------------------------------------------------

void UpstreamExchange::on_body(std::span<const uint8_t> data, bool fin) {
  if (aborted_ || request_done_ || (body_fin_ && data.empty())) {
    if (session_) session_->consume(id_, data.size());  // not wanted any more: credit and drop
    return;
  }
  if (!data.empty() && !head_.has_body) {
    if (session_) session_->consume(id_, data.size());
    return protocol_error("request body on a request that announced none");
  }
  if (head_.framed) {
    // A framed body (docs/protocol.md §4.1): the data is held, the framing credited at once.
    const size_t held_before = body_held_.size();
    pieces_.clear();
    const tunnel::WireError e = request_reader_.feed(data, pieces_);
    if (e != tunnel::WireError::kNone) {
      if (session_) session_->consume(id_, data.size());
      return protocol_error(std::string("framed request body: ") + tunnel::to_string(e));
    }
    for (const auto piece : pieces_) body_held_.insert(body_held_.end(), piece.begin(), piece.end());
    pieces_.clear();
    const size_t taken = body_held_.size() - held_before;
    body_received_ += taken;
    if (session_ && data.size() > taken) session_->consume(id_, data.size() - taken);
    if (request_reader_.done() && !body_fin_) {
      request_trailers_ = tunnel::forwardable_trailers(request_reader_.take_trailers());
      if (head_.content_length && body_received_ < *head_.content_length) {
        return protocol_error("request body shorter than its content-length");
      }
      body_fin_ = true;  // complete: the stream's FIN is not waited for
    } else if (fin && !request_reader_.done()) {
      return protocol_error("framed request body cut short (no trailer section before FIN)");
    }
  } else {
    body_received_ += data.size();
    body_held_.insert(body_held_.end(), data.begin(), data.end());
  }
  if (head_.content_length && body_received_ > *head_.content_length) {
    return protocol_error("request body longer than its content-length");
  }
  if (body_held_.size() > limits_.max_request_hold)
    return protocol_error("request body ignores flow control");
  if (fin && !head_.framed) {
    if (head_.content_length && body_received_ < *head_.content_length) {
      return protocol_error("request body shorter than its content-length");
    }
    body_fin_ = true;
  }
  // A body that is complete by its length (or absent) does not wait for the stream's FIN, so the
  // exchange can finish, and its connection be reused, even if the FIN comes later.
  if (!head_.has_body || (!head_.framed && head_.content_length && body_received_ == *head_.content_length))
    body_fin_ = true;
  pump_request();
}

void UpstreamExchange::pump_request() {
  if (aborted_ || request_done_ || !connected_ || connecting_ || writing_) return;
  // An upgrade request's body bytes are the new protocol's: they wait for the 101.
  const bool hold = codec_->upgrade() && !codec_->switched();
  write_buf_.clear();
  if (!head_written_) codec_->write_head(write_buf_);
  write_consumes_ = 0;
  if (!hold) {
    write_consumes_ = body_held_.size();
    codec_->write_body(write_buf_, body_held_);
    body_held_.clear();
  }
  const bool last = body_fin_ && !end_sent_ && body_held_.empty();
  if (last) codec_->write_end(write_buf_, request_trailers_);
  const bool fin_write = last && codec_->end_by_fin() && !hold;
  if (write_buf_.empty() && !fin_write) {
    if (body_fin_ && head_written_ && body_held_.empty()) {
      request_complete_ = request_done_ = true;
      if (codec_->switched()) end_switched_request();
      maybe_finish();
    }
    return;
  }
  writing_ = true;
  if (last) end_sent_ = true;
  if (fin_write) {
    transport_.write_last(write_buf_, request_trailers_);
  } else {
    transport_.write(write_buf_);
  }
}

void UpstreamExchange::on_written(const std::string& error) {
  if (aborted_ || !writing_) return;
  writing_ = false;
  if (!error.empty()) {
    if (can_retry()) return fail_before_head(error, true);
    // The read side decides: the upstream may still have answered (e.g. 413).
    // The failed write's bytes are gone; their credit is not.
    if (session_) session_->consume(id_, write_consumes_);
    write_consumes_ = 0;
    abandon_request(kStreamUpstreamFailed, false);
    maybe_finish();
    return;
  }
  head_written_ = true;
  if (session_ && write_consumes_) session_->consume(id_, write_consumes_);
  result_.request_bytes += write_consumes_;
  write_consumes_ = 0;
  pump_request();
}

void UpstreamExchange::abandon_request(uint32_t code, bool stop) {
  if (request_done_) return;
  request_abandoned_ = request_done_ = true;
  if (session_) {
    session_->consume(id_, body_held_.size() + (writing_ ? write_consumes_ : 0));
    if (!body_fin_ && stop) session_->stop_sending(id_, code);
  }
  write_consumes_ = 0;
  body_held_.clear();
  body_held_.shrink_to_fit();
}

// --- upstream connection ------------------------------------------------------------------------------

void UpstreamExchange::connect() {
  connecting_ = true;
  transport_.connect();  // a pooled connection answers inline
}

void UpstreamExchange::on_connected(bool reused) {
  if (aborted_ || !connecting_) return;
  connecting_ = false;
  connected_ = true;
  reused_ = reused;
  result_.reused_connection = reused;
  pump_request();
  start_read();
}

void UpstreamExchange::on_connect_failed(const std::string& why, bool tls) {
  if (aborted_ || !connecting_) return;
  connecting_ = false;
  // A transport that words its own failure ("upstream HTTP/3 handshake timed out") keeps its words.
  const bool worded = why.rfind("upstream ", 0) == 0;
  send_bad_gateway((worded ? "" : tls ? "upstream TLS failed: " : "upstream refused: ") + why + " (" +
                   transport_.name() + ")");
}

void UpstreamExchange::close_upstream() {
  transport_.close();
  connected_ = connecting_ = reading_ = false;
  if (writing_) {
    // The write will never complete for us; its bytes still need their flow-control credit.
    writing_ = false;
    if (session_) session_->consume(id_, write_consumes_);
    write_consumes_ = 0;
  }
}

namespace {
// RFC 9110 §9.2.2: a request the upstream may have processed can be sent again only if repeating it
// has the same effect.
bool idempotent(std::string_view method) {
  for (const std::string_view m : {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
    if (method == m) return true;
  return false;
}
}  // namespace

bool UpstreamExchange::can_retry() const {
  // Only a reused keep-alive connection that died before answering, and only while every request
  // body byte is still held here (none was consumed), so the request can be replayed unchanged. A
  // connection that died may still have run the request (a POST would run twice), so only idempotent
  // methods are replayed, unless the upstream said it did not process it (HTTP/2 and HTTP/3 refusals).
  return reused_ && !retried_ && !got_response_bytes_ && result_.request_bytes == 0 && write_consumes_ == 0 &&
         !request_abandoned_ && (idempotent(head_.method) || transport_.unprocessed());
}

void UpstreamExchange::retry() {
  retried_ = true;
  close_upstream();
  head_written_ = false;
  end_sent_ = false;
  request_complete_ = request_done_ = false;
  codec_->restart_response();
  connect();
}

// --- response side ------------------------------------------------------------------------------------

void UpstreamExchange::start_read() {
  if (aborted_ || response_done_ || !connected_ || connecting_ || reading_ || !to_stream_.empty()) return;
  const size_t room = std::min(codec_->input_room(), read_size_.get());
  if (room == 0) return;
  reading_ = true;
  read_asked_ = room;
  transport_.read(room);
}

void UpstreamExchange::on_read(std::span<const uint8_t> data, bool eof, const std::string& error) {
  if (aborted_ || !reading_) return;
  reading_ = false;
  read_size_.after_read(read_asked_, data.size());
  if (eof && data.empty() && !got_response_bytes_ && can_retry()) {
    return fail_before_head("the connection closed", true);
  }
  if (!data.empty()) {
    got_response_bytes_ = true;
    codec_->put_input(data);
  }
  if (eof) {
    codec_->put_eof();
  } else if (!error.empty()) {
    if (!codec_->head_produced()) return fail_before_head(error, true);
    return fail_after_head("the upstream connection failed mid-response: " + error);
  }
  process_response();
}

bool UpstreamExchange::flush_to_stream() {
  if (!session_) return false;
  if (to_stream_.empty() && !fin_after_) return true;
  const size_t n = session_->write(id_, to_stream_, fin_after_);
  to_stream_.erase(to_stream_.begin(), to_stream_.begin() + static_cast<std::ptrdiff_t>(n));
  if (!to_stream_.empty()) return false;  // on_writable resumes
  if (fin_after_) response_done_ = true;
  return true;
}

void UpstreamExchange::on_writable() {
  if (aborted_ || response_done_) return;
  process_response();
}

void UpstreamExchange::process_response() {
  if (aborted_ || response_done_ || !session_) return;
  for (;;) {
    if (!flush_to_stream()) return;
    if (response_done_) return on_response_complete();
    if (fin_after_) return;
    // A framed body (docs/protocol.md §4.1) is decoded aside and goes on the stream as one chunk.
    const auto st = codec_->decode(framed_ ? chunk_ : to_stream_, limits_.wt_chunk);
    if (framed_ && !chunk_.empty()) {
      result_.response_bytes += chunk_.size();
      tunnel::append_body_chunk(to_stream_, chunk_);
      chunk_.clear();
    }
    const uint64_t raw_bytes = framed_ ? 0 : to_stream_.size();
    switch (st) {
      case UpstreamCodec::Status::kHead: {
        auto head = codec_->take_head();
        if (tunnel::is_interim(head.status)) {
          // 100 Continue, 103 Early Hints: on the stream only with the `trailers` feature, at most
          // kMaxInterimHeads, and not for an upgrade (the client waits for its 101); otherwise (as
          // before the feature) dropped.
          if (limits_.trailers && !codec_->upgrade() && interim_sent_ < tunnel::kMaxInterimHeads) {
            ++interim_sent_;
            const auto bytes = tunnel::encode_response_head(head);
            to_stream_.insert(to_stream_.end(), bytes.begin(), bytes.end());
          }
          continue;
        }
        if (limits_.trailers && head.has_body && !codec_->switched() && codec_->may_have_trailers()) {
          head.framed = framed_ = true;
        }
        result_.status = head.status;
        const auto bytes = tunnel::encode_response_head(head);
        to_stream_.insert(to_stream_.end(), bytes.begin(), bytes.end());
        if (codec_->switched()) {
          // 101: the held bytes of the new protocol may go now.
          if (request_done_ && !request_abandoned_) {
            end_switched_request();
          } else {
            pump_request();
          }
          if (aborted_) return;
        }
        continue;
      }
      case UpstreamCodec::Status::kBodyFull:
        result_.response_bytes += raw_bytes;
        continue;
      case UpstreamCodec::Status::kNeedInput:
        result_.response_bytes += raw_bytes;
        if (!flush_to_stream()) return;
        return start_read();
      case UpstreamCodec::Status::kDone:
        result_.response_bytes += raw_bytes;
        if (framed_ && !tunnel::append_body_end(to_stream_, codec_->take_trailers())) {
          return fail_after_head("the upstream's trailer section is over the tunnel's limits");
        }
        fin_after_ = true;
        continue;
      case UpstreamCodec::Status::kError:
        if (!codec_->head_produced()) return fail_before_head(codec_->error(), false);
        return fail_after_head(codec_->error());
    }
  }
}

void UpstreamExchange::end_switched_request() {
  if (!connected_) return;
  if (response_done_) {
    close_upstream();
  } else {
    transport_.shutdown_write();  // the upstream sees the client's EOF; its own bytes go on
  }
}

void UpstreamExchange::on_response_complete() {
  if (codec_->switched()) {
    // The upstream ended its direction; the client's goes on (half-close) until the edge's FIN.
    if (request_done_) close_upstream();
    maybe_finish();
    return;
  }
  // The upstream answered before taking the whole request body (e.g. 413): it does not want the rest,
  // so ask the edge to stop sending it (STOP_SENDING 0, docs/protocol.md §4); the response goes on.
  if (!request_done_) abandon_request(0, true);
  if (codec_->reusable() && request_complete_ && connected_ && !reading_ && !writing_) {
    connected_ = false;
    transport_.release();
  } else {
    close_upstream();
  }
  maybe_finish();
}

// --- failures -------------------------------------------------------------------------------------------

void UpstreamExchange::fail_before_head(const std::string& why, bool transport_error) {
  if (transport_error && can_retry()) {
    spdlog::debug("tunnel: reused upstream connection failed ({}); retrying on a new one", why);
    return retry();
  }
  send_bad_gateway("upstream error: " + why + " (" + transport_.name() + ")");
}

void UpstreamExchange::send_bad_gateway(const std::string& why) {
  close_upstream();
  abandon_request(kStreamUpstreamFailed, false);
  result_.failed = true;
  result_.error = why;
  result_.status = 502;
  const std::string body = "502 Bad Gateway\n" + why + "\n";
  tunnel::ResponseHead h;
  h.status = 502;
  h.has_body = true;
  h.content_length = body.size();
  h.headers = {{std::string(tunnel::kErrorHeader), why}, {"content-type", "text/plain; charset=utf-8"}};
  // After any interim heads still going out (a head's rest may be waiting for the stream).
  const auto head_bytes = tunnel::encode_response_head(h);
  to_stream_.insert(to_stream_.end(), head_bytes.begin(), head_bytes.end());
  to_stream_.insert(to_stream_.end(), body.begin(), body.end());
  result_.response_bytes = body.size();
  fin_after_ = true;
  if (flush_to_stream()) on_response_complete();
}

void UpstreamExchange::fail_after_head(const std::string& why) {
  close_upstream();
  result_.failed = true;
  result_.error = why;
  if (session_ && !response_done_) session_->reset_stream(id_, kStreamUpstreamFailed);
  response_done_ = true;
  to_stream_.clear();
  abandon_request(kStreamUpstreamFailed, true);
  maybe_finish();
}

void UpstreamExchange::protocol_error(const std::string& why) {
  spdlog::warn("tunnel: stream {}: {}", id_, why);
  close_upstream();
  result_.failed = true;
  result_.error = why;
  if (session_ && !response_done_) session_->reset_stream(id_, kStreamProtocolError);
  response_done_ = true;
  to_stream_.clear();
  abandon_request(kStreamProtocolError, true);
  aborted_ = true;
  maybe_finish();
}

void UpstreamExchange::on_reset(std::optional<uint32_t> code) {
  // The edge aborted the request (code 3: the public client went away): the upstream connection is
  // in an unknown state and is closed, never pooled.
  if (aborted_) return;
  close_upstream();
  if (session_) {
    session_->consume(id_, body_held_.size());
    if (!response_done_) session_->reset_stream(id_, kStreamCancelled);
  }
  body_held_.clear();
  request_abandoned_ = request_done_ = true;
  response_done_ = true;
  to_stream_.clear();
  if (!result_.failed) {
    result_.failed = true;
    result_.error = "cancelled by the edge (code " + (code ? std::to_string(*code) : std::string("?")) + ")";
  }
  aborted_ = true;
  maybe_finish();
}

void UpstreamExchange::on_stop_sending(std::optional<uint32_t> code) {
  if (aborted_ || response_done_) return;
  close_upstream();
  response_done_ = true;
  to_stream_.clear();
  abandon_request(kStreamCancelled, true);
  if (!result_.failed) {
    result_.failed = true;
    result_.error = "the edge stopped reading the response (code " +
                    (code ? std::to_string(*code) : std::string("?")) + ")";
  }
  aborted_ = true;
  maybe_finish();
}

void UpstreamExchange::on_stream_closed() {
  if (aborted_ || finished()) return;
  close_upstream();
  response_done_ = true;
  to_stream_.clear();
  abandon_request(kStreamCancelled, false);
  if (!result_.failed) {
    result_.failed = true;
    result_.error = "the edge closed the stream before the exchange finished";
  }
  aborted_ = true;
  maybe_finish();
}

void UpstreamExchange::on_session_gone() {
  close_upstream();
  session_ = nullptr;
  response_done_ = request_done_ = true;
  if (!result_.failed && !reported_) {
    result_.failed = true;
    result_.error = "the tunnel session ended";
  }
  aborted_ = true;
  maybe_finish();
}

void UpstreamExchange::maybe_finish() {
  if (reported_ || !finished()) return;
  reported_ = true;
  if (done_) done_(result_);
}

}  // namespace wtmesh::agent
