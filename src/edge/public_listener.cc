#include "edge/public_listener.h"

#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/post.hpp>
#include <cstring>

#include "edge/h2_connection.h"
#include "edge/socket_queue.h"

namespace wtmesh::edge {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

class PublicListener::Connection final : public std::enable_shared_from_this<Connection> {
 public:
  // The read buffer is allocated when the first bytes are readable (a connection that sends nothing
  // holds none), starts small (a ClientHello or a request head fits) and grows to kReadChunk the
  // first time a read fills it. The TLS session (~20 KiB) is created once the first TLS record is
  // complete (or fills that buffer), so a client dribbling its ClientHello holds little until the
  // handshake deadline cuts it.
  static constexpr size_t kFirstReadChunk = 4 * 1024;
  static constexpr size_t kReadChunk = 16 * 1024;
  static constexpr size_t kWriteBudget = 1024 * 1024;  // bytes written per turn (fill_write)

  Connection(PublicListener& listener, tcp::socket socket, std::shared_ptr<const TlsServerConfig> tls,
             std::string limit_key, std::optional<quic::AddressKey> address)
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

  void start() { pump(); }

  // The edge drains: the codec takes no new request and closes once the ones under way finished.
  void drain() {
    if (closed_ || draining_) return;
    draining_ = true;
    conn_->drain();
    post_pump();
  }
  // Busy until the client acknowledged every byte written to it (socket_queue.h says why).
  bool busy() const {
    return !closed_ && (conn_->busy() || writing_ || !wbuf_.empty() ||
                        unacked_output_bytes(const_cast<tcp::socket&>(socket_).native_handle()) > 0);
  }

  // The listener is going away: drop the proxy (cancelling its stream) and the socket now.
  void detach() {
    listener_ = nullptr;
    close_now();
  }

 private:
  ConnectionHooks hooks() {
    ConnectionHooks h;
    h.wake = [this] { post_pump(); };
    h.log = [this](const RequestLog& l) { log(l); };
    return h;
  }

  void log(const RequestLog& l) {
    log_request(peer_, l);
    if (listener_ && listener_->options_.count_request) listener_->options_.count_request(l);
  }

  EdgeMetrics* metrics() const { return listener_ ? listener_->options_.metrics : nullptr; }

  // HTTP/2 replaces the HTTP/1.1 codec before it saw a byte: on TLS when ALPN chose "h2", on the
  // plain listener when the client's first bytes are the HTTP/2 preface (prior knowledge). Returns
  // false while the plain listener cannot tell yet (a prefix of the preface so far).
  bool choose_codec() {
    if (codec_chosen_) return true;
    if (is_tls()) {
      if (!tls_ || tls_->state() != TlsServerStream::State::kOpen) return true;  // no plaintext yet
      codec_chosen_ = true;
      if (tls_->alpn() == kH2Alpn) use_h2();
      return true;
    }
    if (rlen_ == 0) return true;
    const size_t n = std::min(rlen_, kH2Preface.size());
    if (std::memcmp(rbuf_.get(), kH2Preface.data(), n) != 0) {
      codec_chosen_ = true;  // HTTP/1.1
      return true;
    }
    if (n < kH2Preface.size() && !eof_) return false;
    codec_chosen_ = true;
    if (n == kH2Preface.size() && listener_ && listener_->options_.http2) use_h2();
    return true;
  }

  void use_h2() {
    H2Config cfg;
    cfg.exchange.client = {peer_, is_tls(), limit_key_};
    cfg.exchange.limits = listener_->options_.limits;
    cfg.alt_svc = listener_->options_.alt_svc;
    if (is_tls()) cfg.webtransport_acceptor = listener_->options_.webtransport;  // -15 §7: TLS only
    conn_ = std::make_unique<H2Connection>(listener_->directory_, cfg, hooks());
    if (draining_) conn_->drain();  // the TLS handshake finished after the drain began
  }

  void post_pump() {
    if (pump_posted_ || closed_) return;
    pump_posted_ = true;
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      self->pump_posted_ = false;
      if (self->conn_ && !self->closed_) self->conn_->on_wake();
      self->pump();
    });
  }

  void pump() {
    if (closed_) return;
    if (!lingering_) {
      feed_proxy();
      if (closed_) return;
      fill_write();
      if (conn_->finished() && conn_->client_output().empty() && !writing_ && wbuf_.empty()) {
        if (tls_ && tls_->state() == TlsServerStream::State::kOpen) {
          tls_->close();  // close_notify, then linger
          fill_write();
        }
        if (!writing_) start_linger();
      }
    }
    if (closed_) return;
    maybe_read();
    arm_timer();
  }

  bool is_tls() const { return tls_config_ != nullptr; }

  void feed_proxy() {
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
      if (rlen_ > 0) {
        const size_t n = conn_->on_client_bytes(std::span<const uint8_t>(rbuf_.get(), rlen_));
        std::memmove(rbuf_.get(), rbuf_.get() + n, rlen_ - n);
        rlen_ -= n;
      }
      if (eof_ && rlen_ == 0 && !conn_->finished()) conn_->on_client_eof();
    }
  }

  // Writes the client's output without waiting, as long as the socket takes it: on plain HTTP
  // straight from the codec's buffer, on HTTPS through the TLS layer's ciphertext. Stops when the
  // output is all out, when the socket is full (then one wait for it to drain), or after
  // kWriteBudget bytes (then a posted pump: one fast download does not keep the loop to itself).
  // Writing everything each turn keeps the codec's buffer at about one batch of QUIC packets: a
  // writer that took one chunk per turn fell behind the QUIC reads, and the buffer then grew to the
  // stream's whole window (megabytes, newly allocated and faulted in for every response).
  void fill_write() {
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

  // Encrypts output run by run until it is all taken or the TLS layer's ciphertext cap is reached.
  void encrypt_output() {
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

  void wait_writable() {
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

  void maybe_read() {
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

  void on_read(const boost::system::error_code& ec, size_t n) {
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
    if (!ec && n == rcap_ && rcap_ < kReadChunk && (tls_ || !is_tls())) grow_read_buffer();
    pump();
  }

  // The bytes held before the TLS session exists make a whole first record, fill the buffer, or are
  // not a TLS handshake record at all (GnuTLS then answers with an alert).
  bool first_record_ready() const {
    if (rlen_ == 0) return false;
    if (rbuf_[0] != 0x16 || rlen_ >= rcap_) return true;
    if (rlen_ < 5) return false;
    const size_t record = 5 + ((static_cast<size_t>(rbuf_[3]) << 8) | rbuf_[4]);
    return rlen_ >= record;
  }

  void grow_read_buffer() {
    auto bigger = std::make_unique_for_overwrite<uint8_t[]>(kReadChunk);
    std::memcpy(bigger.get(), rbuf_.get(), rlen_);
    rbuf_ = std::move(bigger);
    rcap_ = kReadChunk;
  }

  void start_linger() {
    if (lingering_) return;
    lingering_ = true;
    linger_until_ = std::chrono::steady_clock::now() + kLinger;
    boost::system::error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (eof_ || ec) close_now();
  }

  void arm_timer() {
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

  bool handshaking() const {
    return is_tls() && (!tls_ || tls_->state() == TlsServerStream::State::kHandshaking);
  }

  std::chrono::milliseconds listener_idle() const {
    if (!listener_) return std::chrono::milliseconds(0);
    const PublicLimits& limits = listener_->options_.limits;
    return conn_ && conn_->upgraded() ? limits.websocket_idle_timeout : limits.idle_timeout;
  }

  void on_timer() {
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

  // Closes with a reset (SO_LINGER 0), as a refused connection is.
  void reset_now() {
    boost::system::error_code ec;
    socket_.set_option(asio::socket_base::linger(true, 0), ec);
    close_now();
  }

  void close_now() {
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

  PublicListener* listener_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string limit_key_;
  std::optional<quic::AddressKey> address_;            // the handshake rate's key
  std::shared_ptr<const TlsServerConfig> tls_config_;  // null: plain HTTP
  std::string peer_;
  std::unique_ptr<TlsServerStream> tls_;    // created with the first bytes
  std::unique_ptr<PublicConnection> conn_;  // HTTP/1.1 until choose_codec() picks HTTP/2
  bool codec_chosen_ = false;
  std::unique_ptr<uint8_t[]> rbuf_;  // see kFirstReadChunk
  size_t rcap_ = 0;
  size_t rlen_ = 0;  // plain HTTP: bytes in rbuf_ the proxy has not taken yet
  size_t lingered_bytes_ = 0;
  std::vector<uint8_t> wbuf_;  // HTTPS: ciphertext not yet written, from wpos_ on
  size_t wpos_ = 0;
  bool reading_ = false, writing_ = false, eof_ = false, closed_ = false;
  bool pump_posted_ = false, lingering_ = false, timer_armed_ = false, draining_ = false;
  std::chrono::steady_clock::time_point last_activity_, linger_until_, timer_at_, handshake_deadline_;
};

PublicListener::PublicListener(asio::io_context& io, TunnelDirectory& directory,
                               PublicListenerOptions options,
                               std::function<std::shared_ptr<const TlsServerConfig>()> tls_config)
    : directory_(directory),
      options_(options),
      tls_config_(std::move(tls_config)),
      acceptor_(io),
      retry_timer_(io),
      refusal_log_timer_(io),
      handshakes_(quic::AddressLimitOptions{.max_connections_per_address = 0,
                                            .handshake_burst = options.limits.tls_handshake_burst,
                                            .handshakes_per_second = options.limits.tls_handshakes_per_ip}) {
  acceptor_.open(options_.bind.protocol());
  acceptor_.set_option(tcp::acceptor::reuse_address(true));
  // "::" takes IPv4 too; a specific IPv6 address (::1) only itself, so another edge may hold the
  // same port on 127.0.0.1 (a pair of edges on one host, tests/peers/edge_drain.sh).
  if (options_.bind.address().is_v6())
    acceptor_.set_option(asio::ip::v6_only(!options_.bind.address().is_unspecified()));
  acceptor_.bind(options_.bind);
  acceptor_.listen(asio::socket_base::max_listen_connections);
  local_ = acceptor_.local_endpoint();
  start_accept();
}

PublicListener::~PublicListener() {
  alive_.reset();
  close();
}

void PublicListener::close() {
  boost::system::error_code ec;
  acceptor_.close(ec);
  retry_timer_.cancel();
  refusal_log_timer_.cancel();
  auto conns = std::exchange(conns_, {});
  per_ip_.clear();
  for (Connection* c : conns) c->detach();
}

void PublicListener::drain() {
  boost::system::error_code ec;
  acceptor_.close(ec);  // new connections are refused by the kernel from now on
  retry_timer_.cancel();
  // drain() may end a connection (forget() edits conns_): walk a copy.
  const std::vector<Connection*> conns(conns_.begin(), conns_.end());
  for (Connection* c : conns) {
    if (conns_.contains(c)) c->drain();
  }
}

size_t PublicListener::busy_count() const {
  size_t n = 0;
  for (const Connection* c : conns_) n += c->busy() ? 1 : 0;
  return n;
}

size_t PublicListener::connection_count(const std::string& limit_key) const {
  auto it = per_ip_.find(limit_key);
  return it == per_ip_.end() ? 0 : it->second;
}

void PublicListener::forget(Connection* conn, const std::string& key) {
  conns_.erase(conn);
  if (auto it = per_ip_.find(key); it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

void PublicListener::on_accepted(tcp::socket socket) {
  boost::system::error_code ec;
  const auto peer = socket.remote_endpoint(ec);
  if (ec) return;  // already gone
  std::string key = client_limit_key(peer.address());
  if (conns_.size() >= options_.limits.max_connections) {
    refuse(socket, key, false);
    return;
  }
  if (options_.limits.max_connections_per_ip > 0 &&
      connection_count(key) >= options_.limits.max_connections_per_ip) {
    refuse(socket, key, true);
    return;
  }
  std::shared_ptr<const TlsServerConfig> tls;
  if (options_.tls && tls_config_) tls = tls_config_();
  if (options_.tls && !tls) {
    socket.close(ec);
    return;
  }
  auto conn =
      std::make_shared<Connection>(*this, std::move(socket), std::move(tls), key,
                                   quic::address_key(peer.data(), static_cast<socklen_t>(peer.size())));
  conns_.insert(conn.get());
  ++per_ip_[key];
  conn->start();
}

void PublicListener::refuse(tcp::socket& socket, const std::string& key, bool per_ip) {
  boost::system::error_code ignored;
  // A reset, not a FIN: the client learns at once and no TIME_WAIT is left here.
  socket.set_option(asio::socket_base::linger(true, 0), ignored);
  socket.close(ignored);
  ++refused_total_;
  if (options_.metrics != nullptr)
    options_.metrics->on_public_shed(per_ip ? PublicShed::kAddressConnections : PublicShed::kConnectionLimit);
  if (per_ip) {
    ++refused_per_ip_;
    refused_example_ = key;
  } else {
    ++refused_global_;
  }
  // The first refusal is logged at once, later ones summed up every kRefusalLogInterval: a flood
  // costs a line per interval, not one per connection.
  if (refusal_log_armed_) return;
  log_refusals();
  arm_refusal_log();
}

bool PublicListener::admit_handshake(const std::optional<quic::AddressKey>& key,
                                     const std::string& limit_key) {
  if (!key) return true;
  if (handshakes_.admit(*key, quic::now_ts()) == quic::AddressLimits::Verdict::kAdmit) return true;
  ++refused_total_;
  ++refused_handshakes_total_;
  ++refused_handshakes_;
  refused_handshake_example_ = limit_key;
  if (options_.metrics != nullptr) options_.metrics->on_public_shed(PublicShed::kHandshakeRate);
  if (!refusal_log_armed_) {
    log_refusals();
    arm_refusal_log();
  }
  return false;
}

void PublicListener::arm_refusal_log() {
  refusal_log_armed_ = true;
  refusal_log_timer_.expires_after(kRefusalLogInterval);
  refusal_log_timer_.async_wait(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& e) {
        if (e || alive.expired()) return;
        refusal_log_armed_ = false;
        if (refused_global_ + refused_per_ip_ + refused_handshakes_ == 0) return;  // the flood is over
        log_refusals();
        arm_refusal_log();
      });
}

void PublicListener::log_refusals() {
  if (refused_global_ > 0) {
    spdlog::warn("edge: refused {} public connection(s) on port {}: {} open, the most the edge takes ({})",
                 refused_global_, local_.port(), conns_.size(), options_.limits.max_connections);
  }
  if (refused_per_ip_ > 0) {
    spdlog::warn(
        "edge: refused {} public connection(s) on port {} from addresses at their cap of {} (e.g. {})",
        refused_per_ip_, local_.port(), options_.limits.max_connections_per_ip, refused_example_);
  }
  if (refused_handshakes_ > 0) {
    spdlog::warn(
        "edge: reset {} TLS handshake(s) on port {} from addresses over {} per second (burst {}; e.g. {})",
        refused_handshakes_, local_.port(), options_.limits.tls_handshakes_per_ip,
        options_.limits.tls_handshake_burst, refused_handshake_example_);
  }
  refused_global_ = refused_per_ip_ = refused_handshakes_ = 0;
}

void PublicListener::start_accept() {
  if (!acceptor_.is_open()) return;
  acceptor_.async_accept(
      [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec, tcp::socket socket) {
        if (alive.expired() || !acceptor_.is_open()) return;
        if (ec) {
          if (ec == asio::error::operation_aborted) return;
          // e.g. out of file descriptors: back off instead of spinning.
          spdlog::warn("edge: accept failed on {}: {}", local_.port(), ec.message());
          retry_timer_.expires_after(std::chrono::milliseconds(100));
          retry_timer_.async_wait([this, alive](const boost::system::error_code& e) {
            if (!e && !alive.expired()) start_accept();
          });
          return;
        }
        on_accepted(std::move(socket));
        start_accept();
      });
}

}  // namespace wtmesh::edge
