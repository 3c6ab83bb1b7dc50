#include "edge/public_listener_connection.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <utility>

#include "edge/h2_connection.h"
#include "edge/socket_queue.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

PublicListener::Connection::Connection(PublicListener& listener, tcp::socket socket,
                                       std::shared_ptr<const TlsServerConfig> tls, std::string limit_key,
                                       std::optional<quic::AddressKey> address)
    : listener_(&listener),
      socket_(std::move(socket)),
      timer_(socket_.get_executor()),
      limit_key_(std::move(limit_key)),
      address_(address),
      tls_config_(std::move(tls)) {
  boost::system::error_code ec;
  const auto peer = socket_.remote_endpoint(ec);
  peer_ = ec ? "?" : peer.address().to_string();
  if (peer.address().is_v6() && peer.address().to_v6().is_v4_mapped()) {
    peer_ = peer.address().to_v6().to_v4().to_string();
  }
  socket_.set_option(tcp::no_delay(true), ec);
  socket_.non_blocking(true, ec);  // fill_write() writes at once and waits only when the socket is full
  const PublicLimits& limits = listener.options_.limits;
  Http1Config cfg;
  cfg.client = {peer_, is_tls(), limit_key_};
  cfg.limits = limits;
  cfg.alt_svc = listener.options_.alt_svc;
  conn_ = std::make_unique<Http1Connection>(listener.directory_, cfg, hooks());
  last_activity_ = std::chrono::steady_clock::now();
  handshake_deadline_ = last_activity_ + limits.handshake_timeout;
}

void PublicListener::Connection::drain() {
  if (closed_ || draining_) return;
  draining_ = true;
  conn_->drain();
  post_pump();
}

bool PublicListener::Connection::busy() const {
  return !closed_ && (conn_->busy() || writing_ || !wbuf_.empty() ||
                      unacked_output_bytes(const_cast<tcp::socket&>(socket_).native_handle()) > 0);
}

void PublicListener::Connection::detach() {
  listener_ = nullptr;
  close_now();
}

ConnectionHooks PublicListener::Connection::hooks() {
  ConnectionHooks h;
  h.wake = [this] { post_pump(); };
  h.log = [this](const RequestLog& l) { log(l); };
  return h;
}

void PublicListener::Connection::log(const RequestLog& l) {
  log_request(peer_, l);
  if (listener_ && listener_->options_.count_request) listener_->options_.count_request(l);
}

bool PublicListener::Connection::choose_codec() {
  if (codec_chosen_) return true;
  if (is_tls()) {
    if (!tls_ || tls_->state() != TlsServerStream::State::kOpen) return true;  // no plaintext yet
    codec_chosen_ = true;
    if (tls_->alpn() == kH2Alpn) use_h2();
    return true;
  }
  if (rlen_ == rpos_) return true;
  const size_t n = std::min(rlen_ - rpos_, kH2Preface.size());
  if (std::memcmp(rbuf_.get() + rpos_, kH2Preface.data(), n) != 0) {
    codec_chosen_ = true;  // HTTP/1.1
    return true;
  }
  if (n < kH2Preface.size() && !eof_) return false;
  codec_chosen_ = true;
  if (n == kH2Preface.size() && listener_ && listener_->options_.http2) use_h2();
  return true;
}

void PublicListener::Connection::use_h2() {
  H2Config cfg;
  cfg.exchange.client = {peer_, is_tls(), limit_key_};
  cfg.exchange.limits = listener_->options_.limits;
  cfg.alt_svc = listener_->options_.alt_svc;
  if (is_tls()) cfg.webtransport_acceptor = listener_->options_.webtransport;  // -15 §7: TLS only
  conn_ = std::make_unique<H2Connection>(listener_->directory_, cfg, hooks());
  if (draining_) conn_->drain();  // the TLS handshake finished after the drain began
}

void PublicListener::Connection::post_pump() {
  if (pump_posted_ || closed_) return;
  pump_posted_ = true;
  asio::post(socket_.get_executor(), [self = shared_from_this()] {
    self->pump_posted_ = false;
    if (self->conn_ && !self->closed_) self->conn_->on_wake();
    self->pump();
  });
}

void PublicListener::Connection::pump() {
  if (closed_) return;
  if (!lingering_) {
    feed_proxy();
    if (closed_) return;
    fill_write();  // writes now: a failed write closes the connection here
    if (closed_) return;
    if (conn_->finished() && conn_->client_output().empty() && !writing_ && wbuf_.empty()) {
      if (tls_ && tls_->state() == TlsServerStream::State::kOpen) {
        tls_->close();  // close_notify, then linger
        fill_write();
        if (closed_) return;
      }
      if (!writing_) start_linger();
    }
  }
  if (closed_) return;
  maybe_read();
  arm_timer();
}

void PublicListener::Connection::feed_proxy() {
  if (!choose_codec()) return;
  if (is_tls()) {
    if (!tls_) return;  // nothing came yet
    for (;;) {
      auto p = tls_->plaintext();
      if (p.empty()) break;
      const size_t n = conn_->on_client_bytes(p);
      tls_->consume_plaintext(n);
      if (n == 0) break;
    }
    if (tls_->state() == TlsServerStream::State::kFailed) {
      if (!conn_->finished()) spdlog::debug("http {}: TLS: {}", peer_, tls_->error());
      conn_->abort("TLS failure");
      close_now();
      return;
    }
    if (tls_->peer_finished() && !conn_->finished()) conn_->on_client_eof();
  } else {
    // The codec takes what its input buffer has room for (a header section, or a request body
    // chunk ahead of the stream): offer the rest again while it takes some, as the TLS branch does.
    // Taken bytes only advance rpos_: a read may be under way into rbuf_ + rlen_ (this runs on
    // every wake), so nothing in the buffer moves until maybe_read() starts the next one.
    while (rpos_ < rlen_) {
      const size_t n = conn_->on_client_bytes(std::span<const uint8_t>(rbuf_.get() + rpos_, rlen_ - rpos_));
      if (closed_) return;
      if (n == 0) break;
      rpos_ += n;
    }
    if (eof_ && rpos_ == rlen_ && !conn_->finished()) conn_->on_client_eof();
  }
}

void PublicListener::Connection::fill_write() {
  if (writing_ || closed_) return;
  size_t written = 0;
  for (;;) {
    std::span<const uint8_t> chunk;
    const bool plain = !is_tls();
    if (plain) {
      chunk = conn_->client_output();
    } else {
      if (wbuf_.empty()) {
        if (!tls_) break;
        encrypt_output();
      }
      chunk = std::span<const uint8_t>(wbuf_).subspan(wpos_);
    }
    if (chunk.empty()) break;
    if (written >= kWriteBudget) {
      post_pump();
      break;
    }
    boost::system::error_code ec;
    const size_t n = socket_.send(asio::buffer(chunk.data(), chunk.size()), 0, ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      wait_writable();
      break;
    }
    if (ec) {
      conn_->on_client_eof();  // the client is gone
      close_now();
      return;
    }
    written += n;
    if (plain) {
      conn_->on_client_written(n);
    } else if (wpos_ += n; wpos_ == wbuf_.size()) {
      wbuf_.clear();
      wpos_ = 0;
    }
    if (n < chunk.size()) {  // the socket took part of it: it is full
      wait_writable();
      break;
    }
  }
  if (written > 0) {
    if (EdgeMetrics* m = metrics()) m->add_public_bytes(0, written);
    last_activity_ = std::chrono::steady_clock::now();
  }
}

void PublicListener::Connection::encrypt_output() {
  while (tls_->write_capacity() > 0) {  // also after the client's close_notify (a half-close)
    auto out = conn_->client_output();
    if (out.empty()) break;
    const size_t n = tls_->write(out);
    conn_->on_client_written(n);
    if (n < out.size()) break;
  }
  tls_->take_ciphertext(wbuf_);
  wpos_ = 0;
}

void PublicListener::Connection::wait_writable() {
  writing_ = true;
  socket_.async_wait(tcp::socket::wait_write,
                     [self = shared_from_this()](const boost::system::error_code& ec) {
                       self->writing_ = false;
                       if (self->closed_) return;
                       if (ec) {
                         self->conn_->on_client_eof();
                         self->close_now();
                         return;
                       }
                       self->pump();
                     });
}

void PublicListener::Connection::maybe_read() {
  if (reading_ || eof_ || closed_) return;
  if (!rbuf_) {
    // Wait for the first bytes without a buffer (one epoll_ctl per connection).
    reading_ = true;
    socket_.async_wait(tcp::socket::wait_read,
                       [self = shared_from_this()](const boost::system::error_code& ec) {
                         self->reading_ = false;
                         if (self->closed_) return;
                         if (ec) {
                           self->on_read(ec, 0);
                           return;
                         }
                         self->rbuf_ = std::make_unique_for_overwrite<uint8_t[]>(kFirstReadChunk);
                         self->rcap_ = kFirstReadChunk;
                         self->maybe_read();
                       });
    return;
  }
  if (rpos_ > 0) {  // no read is under way: the bytes not taken yet move to the front
    std::memmove(rbuf_.get(), rbuf_.get() + rpos_, rlen_ - rpos_);
    rlen_ -= rpos_;
    rpos_ = 0;
  }
  size_t room;
  if (lingering_) {
    room = rcap_;
    rlen_ = 0;  // discard
  } else if (tls_) {
    room = std::min(tls_->space_in(), rcap_);
  } else {
    room = rcap_ - rlen_;  // plain HTTP, or TLS bytes held until the first record is complete
  }
  if (room == 0) return;
  reading_ = true;
  uint8_t* dst = tls_ || lingering_ ? rbuf_.get() : rbuf_.get() + rlen_;
  socket_.async_read_some(asio::buffer(dst, room),
                          [self = shared_from_this()](const boost::system::error_code& ec, size_t n) {
                            self->reading_ = false;
                            if (self->closed_) return;
                            self->on_read(ec, n);
                          });
}

void PublicListener::Connection::on_read(const boost::system::error_code& ec, size_t n) {
  last_activity_ = std::chrono::steady_clock::now();
  if (EdgeMetrics* m = metrics()) m->add_public_bytes(n, 0);
  if (lingering_) {
    lingered_bytes_ += n;
    if (ec || lingered_bytes_ > kLingerBytes)
      close_now();  // the client keeps writing: it gets its reset after all
    else
      pump();
    return;
  }
  received(ec, n);
}

void PublicListener::Connection::start_with(std::span<const uint8_t> first) {
  steer_checked_ = true;  // served here, whatever its bytes say now
  if (first.empty()) {
    pump();
    return;
  }
  rcap_ = std::max(kFirstReadChunk, first.size());
  rbuf_ = std::make_unique_for_overwrite<uint8_t[]>(rcap_);
  std::memcpy(rbuf_.get(), first.data(), first.size());
  received({}, first.size());
}

bool PublicListener::Connection::steered_away() {
  if (is_tls() && !first_record_ready()) return false;
  steer_checked_ = true;
  if (listener_ == nullptr) return false;
  const std::span<const uint8_t> first(rbuf_.get(), rlen_);
  const std::optional<unsigned> to = listener_->steer_target(is_tls(), first);
  if (!to) return false;
  SteeredConnection c;
  boost::system::error_code ec;
  c.protocol = socket_.local_endpoint(ec).protocol();
  if (ec) return false;
  c.fd = socket_.release(ec);  // no operation is under way on it: this is the read's completion
  if (ec) return false;
  c.bytes.assign(first.begin(), first.end());
  c.limit_key = limit_key_;
  c.address = address_;
  // Nothing of it is closed or counted as ended here: the other worker's listener serves it on.
  closed_ = true;
  conn_.reset();
  timer_.cancel();
  std::exchange(listener_, nullptr)->steered_out(this, *to, std::move(c));
  return true;
}

void PublicListener::Connection::received(const boost::system::error_code& ec, size_t n) {
  if (ec) {
    eof_ = true;
    if (is_tls() && !tls_) {
      close_now();  // gone before a TLS record: nothing to answer
      return;
    }
    if (tls_) tls_->feed_eof();
  } else if (tls_) {
    tls_->feed(std::span<const uint8_t>(rbuf_.get(), n));  // room was space_in(): all taken
  } else {
    rlen_ += n;
    if (!steer_checked_ && steered_away()) return;
    if (is_tls() && first_record_ready()) {
      if (!listener_ || !listener_->admit_handshake(address_, limit_key_)) {
        reset_now();  // over the address's handshake rate: no TLS session, no crypto
        return;
      }
      tls_ = std::make_unique<TlsServerStream>(tls_config_);
      tls_->feed(std::span<const uint8_t>(rbuf_.get(), rlen_));  // <= kFirstReadChunk: all taken
      rlen_ = 0;
    }
  }
  if (!ec && (tls_ || !is_tls())) fit_read_buffer(n);
  pump();
}

bool PublicListener::Connection::first_record_ready() const {
  if (rlen_ == 0) return false;
  if (rbuf_[0] != 0x16 || rlen_ >= rcap_) return true;
  if (rlen_ < 5) return false;
  const size_t record = 5 + ((static_cast<size_t>(rbuf_[3]) << 8) | rbuf_[4]);
  return rlen_ >= record;
}

void PublicListener::Connection::fit_read_buffer(size_t n) {
  // Over TLS a read is capped by the TLS layer's ciphertext room: a larger buffer would sit unused.
  const size_t most = tls_ ? std::min(kMaxReadChunk, TlsStreamLimits{}.max_ciphertext_in) : kMaxReadChunk;
  size_t cap = rcap_;
  if (n == rcap_ && rcap_ < most) {
    cap = std::min(std::max(rcap_ * 2, kReadChunk), most);
  } else if (rcap_ > kReadChunk && n < rcap_ / 4 && rlen_ - rpos_ <= kReadChunk / 2) {
    cap = kReadChunk;  // the burst is over: an idle keep-alive connection holds the usual size
  }
  if (cap == rcap_) return;
  auto next = std::make_unique_for_overwrite<uint8_t[]>(cap);
  if (rlen_ > rpos_) std::memcpy(next.get(), rbuf_.get() + rpos_, rlen_ - rpos_);
  rbuf_ = std::move(next);
  rcap_ = cap;
  rlen_ -= rpos_;
  rpos_ = 0;
}

void PublicListener::Connection::start_linger() {
  if (lingering_) return;
  lingering_ = true;
  linger_until_ = std::chrono::steady_clock::now() + kLinger;
  boost::system::error_code ec;
  socket_.shutdown(tcp::socket::shutdown_send, ec);
  if (eof_ || ec) close_now();
}

void PublicListener::Connection::arm_timer() {
  if (closed_) return;
  auto when = last_activity_ + listener_idle();
  if (auto d = conn_->next_deadline()) when = std::min(when, *d);
  if (lingering_) when = std::min(when, linger_until_);
  if (handshaking()) when = std::min(when, handshake_deadline_);
  // Activity only pushes the idle deadline later: keep an armed timer that is due no later than
  // needed (on_timer re-checks and re-arms) instead of cancelling and re-arming it on every read.
  if (timer_armed_ && timer_at_ <= when) return;
  timer_armed_ = true;
  timer_at_ = when;
  timer_.expires_at(when);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->closed_) return;
    self->timer_armed_ = false;
    self->on_timer();
  });
}

std::chrono::milliseconds PublicListener::Connection::listener_idle() const {
  if (!listener_) return std::chrono::milliseconds(0);
  const PublicLimits& limits = listener_->options_.limits;
  return conn_ && conn_->upgraded() ? limits.websocket_idle_timeout : limits.idle_timeout;
}

void PublicListener::Connection::on_timer() {
  const auto now = std::chrono::steady_clock::now();
  if (lingering_ && now >= linger_until_) {
    close_now();
    return;
  }
  if (!lingering_ && handshaking() && now >= handshake_deadline_) {
    spdlog::debug("http {}: TLS handshake not finished in time, closing", peer_);
    close_now();
    return;
  }
  if (now >= last_activity_ + listener_idle()) {
    conn_->abort("idle timeout");
    close_now();
    return;
  }
  conn_->on_tick(now);
  pump();
}

void PublicListener::Connection::reset_now() {
  boost::system::error_code ec;
  socket_.set_option(asio::socket_base::linger(true, 0), ec);
  close_now();
}

void PublicListener::Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  if (auto why = conn_ ? conn_->shed() : std::nullopt) {
    if (EdgeMetrics* m = metrics()) m->on_public_shed(*why);
  }
  // A TLS session that began (a first record came) but never opened: failed, timed out, or the
  // client left mid-handshake.
  if (tls_ && !codec_chosen_) {
    if (EdgeMetrics* m = metrics()) m->on_tls_handshake_failure();
  }
  conn_.reset();  // cancels an open stream, returns held credit
  boost::system::error_code ec;
  timer_.cancel();
  socket_.close(ec);
  if (listener_) {
    listener_->forget(this, limit_key_);
    listener_ = nullptr;
  }
}

}  // namespace wtmesh::edge
