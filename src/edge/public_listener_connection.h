// One accepted connection of a PublicListener (edge/public_listener.h): it moves bytes between the
// socket, an optional TlsServerStream (HTTPS) and the connection's codec (Http1Connection, or
// H2Connection once ALPN or the preface chose HTTP/2), and runs the connection's timer (idle,
// handshake and linger deadlines). Only PublicListener creates it; it is declared here so that
// the listener's bookkeeping and the connection's I/O live in files of their own.
#pragma once

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "edge/public_listener.h"

namespace wtmesh::edge {

class PublicListener::Connection final : public std::enable_shared_from_this<Connection> {
 public:
  // The read buffer is allocated when the first bytes are readable (a connection that sends nothing
  // holds none), starts small (a ClientHello or a request head fits) and grows to kReadChunk the
  // first time a read fills it, and on while reads keep filling it (fit_read_buffer). The TLS
  // session (~20 KiB) is created once the first TLS record is complete (or fills that buffer), so a
  // client dribbling its ClientHello holds little until the handshake deadline cuts it.
  static constexpr size_t kFirstReadChunk = 4 * 1024;
  static constexpr size_t kReadChunk = 16 * 1024;
  static constexpr size_t kMaxReadChunk = 256 * 1024;
  static constexpr size_t kWriteBudget = 1024 * 1024;  // bytes written per turn (fill_write)

  using tcp = boost::asio::ip::tcp;

  Connection(PublicListener& listener, tcp::socket socket, std::shared_ptr<const TlsServerConfig> tls,
             std::string limit_key, std::optional<quic::AddressKey> address);

  void start() { pump(); }
  // A connection another worker's listener accepted and steered here (edge/listener_steering.h):
  // `first` is what it read, taken as this connection's first read.
  void start_with(std::span<const uint8_t> first);

  // The edge drains: the codec takes no new request and closes once the ones under way finished.
  void drain();
  // Busy until the client acknowledged every byte written to it (socket_queue.h says why).
  bool busy() const;

  // The listener is going away: drop the proxy (cancelling its stream) and the socket now.
  void detach();
  const std::string& limit_key() const { return limit_key_; }

 private:
  ConnectionHooks hooks();
  void log(const RequestLog& l);
  EdgeMetrics* metrics() const { return listener_ ? listener_->options_.metrics : nullptr; }

  // HTTP/2 replaces the HTTP/1.1 codec before it saw a byte: on TLS when ALPN chose "h2", on the
  // plain listener when the client's first bytes are the HTTP/2 preface (prior knowledge). Returns
  // false while the plain listener cannot tell yet (a prefix of the preface so far).
  bool choose_codec();
  void use_h2();
  void post_pump();
  void pump();
  bool is_tls() const { return tls_config_ != nullptr; }

  void feed_proxy();

  // Writes the client's output without waiting, as long as the socket takes it: on plain HTTP
  // straight from the codec's buffer, on HTTPS through the TLS layer's ciphertext. Stops when the
  // output is all out, when the socket is full (then one wait for it to drain), or after
  // kWriteBudget bytes (then a posted pump: one fast download does not keep the loop to itself).
  // Writing everything each turn keeps the codec's buffer at about one batch of QUIC packets: a
  // writer that took one chunk per turn fell behind the QUIC reads, and the buffer then grew to the
  // stream's whole window (megabytes, newly allocated and faulted in for every response).
  void fill_write();

  // Encrypts output run by run until it is all taken or the TLS layer's ciphertext cap is reached.
  void encrypt_output();
  void wait_writable();
  void maybe_read();
  void on_read(const boost::system::error_code& ec, size_t n);
  // on_read's part after the bytes were counted: n more bytes in rbuf_ (or the error).
  void received(const boost::system::error_code& ec, size_t n);
  // Once, with the first bytes: hands the connection to the worker holding the name they ask for
  // (PublicListener::steer_target). True when it went: this object is done, its socket given away. Over
  // TLS it waits for the first record; plain HTTP looks at the first read only.
  bool steered_away();

  // The bytes held before the TLS session exists make a whole first record, fill the buffer, or are
  // not a TLS handshake record at all (GnuTLS then answers with an alert).
  bool first_record_ready() const;
  // After a read of n bytes: a read that filled the buffer doubles it (past kReadChunk up to
  // kMaxReadChunk: an upload then costs fewer reads and QUIC trains per byte); one that came back
  // under a quarter full takes a grown buffer back to kReadChunk.
  void fit_read_buffer(size_t n);
  void start_linger();
  void arm_timer();
  bool handshaking() const {
    return is_tls() && (!tls_ || tls_->state() == TlsServerStream::State::kHandshaking);
  }

  std::chrono::milliseconds listener_idle() const;
  void on_timer();

  // Closes with a reset (SO_LINGER 0), as a refused connection is.
  void reset_now();
  void close_now();
  PublicListener* listener_;
  boost::asio::ip::tcp::socket socket_;
  boost::asio::steady_timer timer_;
  std::string limit_key_;
  std::optional<quic::AddressKey> address_;            // the handshake rate's key
  std::shared_ptr<const TlsServerConfig> tls_config_;  // null: plain HTTP
  std::string peer_;
  std::unique_ptr<TlsServerStream> tls_;    // created with the first bytes
  std::unique_ptr<PublicConnection> conn_;  // HTTP/1.1 until choose_codec() picks HTTP/2
  bool codec_chosen_ = false;
  std::unique_ptr<uint8_t[]> rbuf_;  // see kFirstReadChunk
  size_t rcap_ = 0;
  size_t rlen_ = 0;  // bytes in rbuf_ (plain HTTP: those from rpos_ on are not taken by the codec yet)
  size_t rpos_ = 0;
  size_t lingered_bytes_ = 0;
  std::vector<uint8_t> wbuf_;  // HTTPS: ciphertext not yet written, from wpos_ on
  size_t wpos_ = 0;
  bool reading_ = false, writing_ = false, eof_ = false, closed_ = false;
  bool pump_posted_ = false, lingering_ = false, timer_armed_ = false, draining_ = false;
  bool steer_checked_ = false;  // steered_away() looked (or it came steered)
  std::chrono::steady_clock::time_point last_activity_, linger_until_, timer_at_, handshake_deadline_;
};

}  // namespace wtmesh::edge
