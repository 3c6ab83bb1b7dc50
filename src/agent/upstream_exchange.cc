#include "agent/upstream_exchange.h"

#include <spdlog/spdlog.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <cctype>

namespace wtmesh::agent {

namespace asio = boost::asio;
using tunnel::kStreamCancelled;
using tunnel::kStreamProtocolError;
using tunnel::kStreamUpstreamFailed;

namespace {

// "Connection refused" -> "connection refused": the message goes inside a sentence.
std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

UpstreamExchange::UpstreamExchange(asio::io_context& io, wt::Session& session, wt::StreamId id,
                                   UpstreamPool& pool, tunnel::RequestHead head, DoneFn done,
                                   ExchangeLimits limits)
    : io_(io),
      session_(&session),
      id_(id),
      pool_(pool),
      head_(std::move(head)),
      done_(std::move(done)),
      limits_(limits),
      started_(std::chrono::steady_clock::now()) {
  result_.method = head_.method;
  result_.target = head_.target;
}

UpstreamExchange::~UpstreamExchange() = default;

std::string UpstreamExchange::upstream_name() const {
  const auto& ep = pool_.endpoint();
  return (ep.address().is_v6() ? "[" + ep.address().to_string() + "]" : ep.address().to_string()) + ":" +
         std::to_string(ep.port());
}

void UpstreamExchange::start(std::span<const uint8_t> early_body, bool fin) {
  std::string error;
  auto request = encode_upstream_request(head_, &error);
  if (!request) {
    session_->consume(id_, early_body.size());
    protocol_error("request head cannot be forwarded: " + error);
    return;
  }
  request_head_ = std::move(request->head);
  chunked_ = request->chunked;
  decoder_.emplace(head_.method == "HEAD", limits_.decoder);
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
  body_received_ += data.size();
  body_held_.insert(body_held_.end(), data.begin(), data.end());
  if (!data.empty() && !head_.has_body)
    return protocol_error("request body on a request that announced none");
  if (head_.content_length && body_received_ > *head_.content_length) {
    return protocol_error("request body longer than its content-length");
  }
  if (body_held_.size() > limits_.max_request_hold)
    return protocol_error("request body ignores flow control");
  if (fin) {
    if (head_.content_length && body_received_ < *head_.content_length) {
      return protocol_error("request body shorter than its content-length");
    }
    body_fin_ = true;
  }
  // A body that is complete by its length (or absent) does not wait for the stream's FIN, so the
  // exchange can finish, and its connection be reused, even if the FIN comes later.
  if (!head_.has_body || (head_.content_length && body_received_ == *head_.content_length)) body_fin_ = true;
  pump_request();
}

void UpstreamExchange::pump_request() {
  if (aborted_ || request_done_ || !socket_ || connecting_ || writing_) return;
  write_buf_.clear();
  if (!head_written_) write_buf_ = request_head_;
  write_consumes_ = body_held_.size();
  if (chunked_) {
    append_chunk(write_buf_, body_held_);
  } else {
    write_buf_.append(reinterpret_cast<const char*>(body_held_.data()), body_held_.size());
  }
  body_held_.clear();
  const bool last = body_fin_ && chunked_ && !last_chunk_sent_;
  if (last) write_buf_.append(kLastChunk);
  if (write_buf_.empty()) {
    if (body_fin_ && head_written_) {
      request_complete_ = request_done_ = true;
      maybe_finish();
    }
    return;
  }
  writing_ = true;
  if (last) last_chunk_sent_ = true;
  asio::async_write(*socket_, asio::buffer(write_buf_),
                    [self = shared_from_this(), gen = gen_](boost::system::error_code ec, size_t) {
                      if (gen != self->gen_ || self->aborted_) return;
                      self->writing_ = false;
                      if (ec) {
                        const std::string why = lower_first(ec.message());
                        if (self->can_retry()) return self->fail_before_head(why, true);
                        // The read side decides: the upstream may still have answered (e.g. 413).
                        // The failed write's bytes are gone; their credit is not.
                        if (self->session_) self->session_->consume(self->id_, self->write_consumes_);
                        self->write_consumes_ = 0;
                        self->abandon_request(kStreamUpstreamFailed, false);
                        self->maybe_finish();
                        return;
                      }
                      self->head_written_ = true;
                      if (self->session_ && self->write_consumes_) {
                        self->session_->consume(self->id_, self->write_consumes_);
                      }
                      self->result_.request_bytes += self->write_consumes_;
                      self->write_consumes_ = 0;
                      self->pump_request();
                    });
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
  if (auto pooled = pool_.take()) return on_connected(std::move(pooled), true);
  socket_ = std::make_unique<UpstreamPool::Socket>(io_);
  connecting_ = true;
  socket_->async_connect(pool_.endpoint(),
                         [self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
                           if (gen != self->gen_ || self->aborted_) return;
                           self->connecting_ = false;
                           if (ec) {
                             return self->send_bad_gateway("upstream refused: " + lower_first(ec.message()) +
                                                           " (" + self->upstream_name() + ")");
                           }
                           boost::system::error_code ignored;
                           self->socket_->set_option(asio::ip::tcp::no_delay(true), ignored);
                           self->on_connected(std::move(self->socket_), false);
                         });
}

void UpstreamExchange::on_connected(std::unique_ptr<UpstreamPool::Socket> socket, bool reused) {
  socket_ = std::move(socket);
  reused_ = reused;
  result_.reused_connection = reused;
  pump_request();
  start_read();
}

void UpstreamExchange::close_upstream() {
  ++gen_;
  if (socket_) {
    boost::system::error_code ec;
    socket_->close(ec);
    socket_.reset();
  }
  connecting_ = reading_ = false;
  if (writing_) {
    // The write will never complete for us; its bytes still need their flow-control credit.
    writing_ = false;
    if (session_) session_->consume(id_, write_consumes_);
    write_consumes_ = 0;
  }
}

bool UpstreamExchange::can_retry() const {
  // Only a reused keep-alive connection that died before answering, and only while every request
  // body byte is still held here (none was consumed), so the request can be replayed unchanged.
  return reused_ && !retried_ && !got_response_bytes_ && result_.request_bytes == 0 && write_consumes_ == 0 &&
         !request_abandoned_;
}

void UpstreamExchange::retry() {
  retried_ = true;
  close_upstream();
  head_written_ = false;
  last_chunk_sent_ = false;
  request_complete_ = request_done_ = false;
  decoder_.emplace(head_.method == "HEAD", limits_.decoder);
  connect();
}

// --- response side ------------------------------------------------------------------------------------

void UpstreamExchange::start_read() {
  if (aborted_ || response_done_ || !socket_ || connecting_ || reading_ || !to_stream_.empty()) return;
  const size_t room = std::min(decoder_->input_room(), limits_.read_chunk);
  if (room == 0) return;
  if (!read_buf_) read_buf_ = std::make_unique_for_overwrite<uint8_t[]>(limits_.read_chunk);
  reading_ = true;
  socket_->async_read_some(asio::buffer(read_buf_.get(), room), [self = shared_from_this(), gen = gen_](
                                                                     boost::system::error_code ec, size_t n) {
    if (gen != self->gen_ || self->aborted_) return;
    self->reading_ = false;
    if (ec == asio::error::eof && n == 0 && !self->got_response_bytes_ && self->can_retry()) {
      return self->fail_before_head("the connection closed", true);
    }
    if (n > 0) {
      self->got_response_bytes_ = true;
      self->decoder_->put_input(std::span<const uint8_t>(self->read_buf_.get(), n));
    }
    if (ec == asio::error::eof) {
      self->decoder_->put_eof();
    } else if (ec) {
      const std::string why = lower_first(ec.message());
      if (!self->decoder_->head_produced()) return self->fail_before_head(why, true);
      return self->fail_after_head("the upstream connection failed mid-response: " + why);
    }
    self->process_response();
  });
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
    const auto st = decoder_->decode(to_stream_, limits_.wt_chunk);
    switch (st) {
      case ResponseDecoder::Status::kHead: {
        const auto head = decoder_->take_head();
        result_.status = head.status;
        const auto bytes = tunnel::encode_response_head(head);
        to_stream_.insert(to_stream_.end(), bytes.begin(), bytes.end());
        continue;
      }
      case ResponseDecoder::Status::kBodyFull:
        result_.response_bytes += to_stream_.size();
        continue;
      case ResponseDecoder::Status::kNeedInput:
        result_.response_bytes += to_stream_.size();
        if (!flush_to_stream()) return;
        return start_read();
      case ResponseDecoder::Status::kDone:
        result_.response_bytes += to_stream_.size();
        fin_after_ = true;
        continue;
      case ResponseDecoder::Status::kError:
        if (!decoder_->head_produced()) return fail_before_head(decoder_->error(), false);
        return fail_after_head(decoder_->error());
    }
  }
}

void UpstreamExchange::on_response_complete() {
  // The upstream answered before taking the whole request body (e.g. 413): it does not want the rest,
  // so ask the edge to stop sending it (STOP_SENDING 0, docs/protocol.md §4); the response goes on.
  if (!request_done_) abandon_request(0, true);
  if (decoder_->reusable() && request_complete_ && socket_ && !reading_ && !writing_) {
    ++gen_;
    pool_.put(std::move(socket_));
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
  send_bad_gateway("upstream error: " + why + " (" + upstream_name() + ")");
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
  to_stream_ = tunnel::encode_response_head(h);
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
  result_.duration = std::chrono::steady_clock::now() - started_;
  if (done_) done_(result_);
}

}  // namespace wtmesh::agent
