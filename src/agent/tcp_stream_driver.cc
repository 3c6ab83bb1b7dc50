#include "agent/tcp_stream_driver.h"

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::tcp;

TcpStreamDriver::TcpStreamDriver(asio::io_context& io, wt::Session& session, wt::StreamId id,
                                 const TcpTarget& target, const tunnel::TcpStreamHead& head,
                                 std::function<void(bool)> done)
    : io_(io),
      session_(&session),
      id_(id),
      target_(target),
      head_(head),
      done_fn_(std::move(done)),
      socket_(io) {}

TcpStreamDriver::~TcpStreamDriver() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void TcpStreamDriver::start(std::span<const uint8_t> early, bool fin) {
  if (target_.proxy_protocol) in_ = tunnel::proxy_v2_header(head_.client, head_.server);
  on_body(early, fin);
  socket_.async_connect(target_.endpoint, [self = shared_from_this()](boost::system::error_code ec) {
    if (self->done_) return;
    if (ec) {
      spdlog::info("tcp: cannot connect to {}: {}",
                   endpoint_text(self->target_.endpoint.address(), self->target_.endpoint.port()),
                   ec.message());
      return self->fail_stream(tunnel::kStreamUpstreamFailed);
    }
    boost::system::error_code ignored;
    self->socket_.set_option(tcp::no_delay(true), ignored);
    self->connected_ = true;
    self->pump_down();
    self->pump_up();
  });
}

void TcpStreamDriver::on_body(std::span<const uint8_t> data, bool fin) {
  if (done_) {
    if (session_) session_->consume(id_, data.size());
    return;
  }
  in_.insert(in_.end(), data.begin(), data.end());
  in_credit_ += data.size();
  if (fin) down_fin_ = true;
  pump_down();
}

void TcpStreamDriver::pump_down() {
  if (done_ || !connected_ || writing_) return;
  if (out_.empty()) {
    std::swap(out_, in_);
    out_credit_ = std::exchange(in_credit_, 0);
  }
  if (out_.empty()) {
    if (down_fin_ && !down_shut_) {
      boost::system::error_code ec;
      socket_.shutdown(tcp::socket::shutdown_send, ec);
      down_shut_ = true;
      maybe_finish();
    }
    return;
  }
  writing_ = true;
  asio::async_write(socket_, asio::buffer(out_),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      self->writing_ = false;
                      if (self->done_) return;
                      if (ec) return self->fail_stream(tunnel::kStreamUpstreamFailed);
                      if (self->session_) self->session_->consume(self->id_, self->out_credit_);
                      self->out_.clear();
                      self->out_credit_ = 0;
                      self->pump_down();
                    });
}

void TcpStreamDriver::pump_up() {
  if (done_ || !connected_ || up_fin_sent_ || session_ == nullptr) return;
  while (up_pos_ < up_.size()) {
    const size_t n = session_->write(id_, std::span<const uint8_t>(up_).subspan(up_pos_), false);
    if (n == 0) return;  // on_writable follows
    up_pos_ += n;
  }
  up_.clear();
  up_pos_ = 0;
  if (up_eof_) {
    session_->write(id_, {}, true);
    up_fin_sent_ = true;
    return maybe_finish();
  }
  if (reading_) return;
  reading_ = true;
  up_.resize(target_.read_chunk);
  socket_.async_read_some(
      asio::buffer(up_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
        self->reading_ = false;
        if (self->done_) return;
        if (ec == asio::error::eof) {
          self->up_.clear();
          self->up_eof_ = true;
        } else if (ec) {
          return self->fail_stream(tunnel::kStreamUpstreamFailed);  // the local service reset
        } else {
          self->up_.resize(n);
        }
        self->pump_up();
      });
}

void TcpStreamDriver::fail_stream(uint32_t code) {
  if (done_) return;
  if (session_) {
    session_->consume(id_, in_credit_ + out_credit_);
    session_->reset_stream(id_, code);
    session_->stop_sending(id_, code);
  }
  reset_local();
  finish(false);
}

void TcpStreamDriver::reset_local() {
  boost::system::error_code ec;
  socket_.set_option(asio::socket_base::linger(true, 0), ec);  // close() sends RST
  socket_.close(ec);
}

void TcpStreamDriver::on_reset(std::optional<uint32_t> /*code*/) {
  if (done_) return;
  // The edge's client reset: so does ours. Our sending half is moot too.
  fail_stream(tunnel::kStreamCancelled);
}

void TcpStreamDriver::on_stop_sending(std::optional<uint32_t> /*code*/) { on_reset(std::nullopt); }

void TcpStreamDriver::on_stream_closed() {
  // Both FINs exchanged while stream bytes are still being written locally: they finish (consume()
  // after the close still returns the connection's credit). Anything else is the end of the relay.
  if (done_ || (up_fin_sent_ && down_fin_)) return;
  on_session_gone();
}

void TcpStreamDriver::on_session_gone() {
  if (done_) return;
  session_ = nullptr;  // the stream is gone; nothing more goes onto it
  reset_local();
  finish(false);
}

void TcpStreamDriver::maybe_finish() {
  if (up_fin_sent_ && down_shut_ && !writing_ && out_.empty()) {
    boost::system::error_code ec;
    socket_.close(ec);
    finish(true);
  }
}

void TcpStreamDriver::finish(bool clean) {
  if (done_) return;
  done_ = true;
  if (auto fn = std::move(done_fn_)) fn(clean);
}

}  // namespace wtmesh::agent
