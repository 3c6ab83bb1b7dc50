#include "agent/tcp_stream_driver.h"

#include <spdlog/spdlog.h>

#include <boost/asio/write.hpp>

namespace wtmesh::agent {

namespace asio = boost::asio;
using asio::ip::tcp;

TcpStreamDriver::TcpStreamDriver(asio::io_context& io, wt::Session& session, wt::StreamId id,
                                 const TcpTarget& target, const tunnel::TcpStreamHead& head,
                                 std::function<void(bool)> done)
    : session_(&session),
      id_(id),
      target_(target),
      head_(head),
      done_fn_(std::move(done)),
      socket_(io),
      relay_(target.read_chunk, target.max_read_chunk) {}

TcpStreamDriver::TcpStreamDriver(wt::Session& session, wt::StreamId id, tcp::socket client, std::string name,
                                 std::function<void(const tunnel::ConnectReply&)> on_refused,
                                 std::function<void(bool)> done)
    : session_(&session),
      id_(id),
      done_fn_(std::move(done)),
      socket_(std::move(client)),
      relay_(target_.read_chunk, target_.max_read_chunk),
      connect_name_(std::move(name)),
      on_refused_(std::move(on_refused)) {}

TcpStreamDriver::~TcpStreamDriver() {
  boost::system::error_code ec;
  socket_.close(ec);
}

void TcpStreamDriver::start(std::span<const uint8_t> early, bool fin) {
  if (connect_name_) {
    // The head first; the client's bytes follow at once (the edge holds them until it answers).
    relay_.queue_up(tunnel::encode_connect_stream_head({*connect_name_}));
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    connected_ = true;
    on_body(early, fin);
    pump_up();
    return;
  }
  if (target_.proxy_protocol) relay_.down_data(tunnel::proxy_v2_header(head_.client, head_.server), false, 0);
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

bool TcpStreamDriver::take_reply(std::span<const uint8_t>& data, bool fin) {
  tunnel::ConnectReply reply;
  size_t used = 0;
  const auto e = reply_reader_.feed(data, used, reply);
  if (session_) session_->consume(id_, used);
  data = data.subspan(used);
  if (e == tunnel::WireError::kNeedMore && !fin) return false;
  if (e != tunnel::WireError::kNone) {
    if (session_) session_->consume(id_, data.size());
    spdlog::info("connect {}: bad reply from the edge: {}", *connect_name_,
                 e == tunnel::WireError::kNeedMore ? "the stream ended inside it" : tunnel::to_string(e));
    fail_stream(tunnel::kStreamProtocolError);
    return false;
  }
  if (reply.connected()) return true;
  if (session_) session_->consume(id_, data.size());
  if (on_refused_) on_refused_(reply);
  fail_stream(tunnel::kStreamCancelled);  // the local client is reset: it reaches nothing
  return false;
}

void TcpStreamDriver::on_body(std::span<const uint8_t> data, bool fin) {
  if (done_) {
    if (session_) session_->consume(id_, data.size());
    return;
  }
  if (connect_name_ && !reply_reader_.done() && (!data.empty() || fin) && !take_reply(data, fin)) return;
  relay_.down_data(data, fin, data.size());
  pump_down();
}

// Stream → local service: credit goes back once the bytes are written to the socket.
void TcpStreamDriver::pump_down() {
  if (done_ || !connected_) return;
  const auto out = relay_.start_write();
  if (out.empty()) {
    if (!relay_.shutdown_due()) return;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    relay_.shutdown_done();
    return maybe_finish();
  }
  asio::async_write(socket_, asio::buffer(out.data(), out.size()),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      if (self->done_) return;
                      if (ec) return self->fail_stream(tunnel::kStreamUpstreamFailed);
                      const size_t credit = self->relay_.write_done();
                      if (self->session_) self->session_->consume(self->id_, credit);
                      self->pump_down();
                    });
}

// Local service → stream (tunnel::TcpRelay says what is due).
void TcpStreamDriver::pump_up() {
  if (done_ || !connected_ || session_ == nullptr) return;
  for (auto p = relay_.up_pending(); !p.empty(); p = relay_.up_pending()) {
    const size_t n = session_->write(id_, p, false);
    if (n == 0) return;  // on_writable follows
    relay_.up_taken(n);
  }
  if (relay_.up_fin_due()) {
    session_->write(id_, {}, true);
    relay_.up_fin_sent();
    return maybe_finish();
  }
  if (!relay_.read_wanted()) return;
  const auto buf = relay_.start_read();
  socket_.async_read_some(asio::buffer(buf.data(), buf.size()),
                          [self = shared_from_this()](boost::system::error_code ec, size_t n) {
                            if (self->done_) return;
                            // The local service reset, or a socket error: the stream is reset.
                            if (ec && ec != asio::error::eof)
                              return self->fail_stream(tunnel::kStreamUpstreamFailed);
                            self->relay_.read_done(n, ec == asio::error::eof);
                            self->pump_up();
                          });
}

void TcpStreamDriver::fail_stream(uint32_t code) {
  if (done_) return;
  if (session_) {
    session_->consume(id_, relay_.held_credit());
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
  if (done_ || (relay_.up_finished() && relay_.down_fin())) return;
  on_session_gone();
}

void TcpStreamDriver::on_session_gone() {
  if (done_) return;
  session_ = nullptr;  // the stream is gone; nothing more goes onto it
  reset_local();
  finish(false);
}

void TcpStreamDriver::maybe_finish() {
  if (relay_.finished()) {
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
