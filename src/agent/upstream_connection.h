// One byte connection to a local upstream, for the agent's upstream drivers: plain TCP, or TLS over
// TCP through the sans-I/O agent::TlsClientStream (the codec above never knows which). Asio lives
// here; the TLS protocol stays in TlsClientStream.
//
//  - open() connects (TCP_NODELAY) and, for TLS, runs the handshake (ALPN, SNI, verification by the
//    target's quic::TlsClientContext); the callback gets the connection or a sentence saying why not
//    ("connection refused", "certificate not trusted for localhost: ...").
//  - At most one write() and one read() are pending at a time; their completions always come from the
//    io_context, never from inside the call. cancel() drops both (no completion arrives for them).
//  - TLS: plaintext is taken only while the TLS stream has room (its ciphertext caps bound memory);
//    socket reads happen only while the TLS stream has room for ciphertext, so a reader that stops
//    reading stops the upstream through TCP's window.
//  - watch_idle(): while pooled, a plain connection that becomes readable is dead (EOF, reset or
//    junk); a TLS one may first receive post-handshake messages (TLS 1.3 session tickets), which are
//    absorbed; only plaintext, an EOF or an error drops it.
//
// Lifetime: shared (std::shared_ptr); pending Asio handlers hold it alive.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wtmesh::quic {
class TlsClientContext;
}

namespace wtmesh::agent {

class TlsClientStream;

// Where a tunnel's upstream is and how to speak to it at the byte level.
struct UpstreamTarget {
  boost::asio::ip::tcp::endpoint endpoint;
  // TLS to the upstream when set (`--upstream-tls`): the trust policy and the name checked and sent
  // as SNI (an IP literal is checked against the certificate's IP SANs and not sent as SNI).
  std::shared_ptr<const quic::TlsClientContext> tls;
  std::string tls_name = "localhost";
  // ALPN offered, in order of preference; the server's choice picks the codec ("" = none chosen).
  std::vector<std::string> alpn{"h2", "http/1.1"};
};

class UpstreamConnection final : public std::enable_shared_from_this<UpstreamConnection> {
 public:
  using Socket = boost::asio::ip::tcp::socket;
  // `tls_failed`: TCP connected but the TLS handshake failed (`error` says why).
  using OpenFn = std::function<void(std::shared_ptr<UpstreamConnection> conn, const std::string& error,
                                    bool tls_failed)>;
  using WriteFn = std::function<void(const std::string& error)>;
  using ReadFn = std::function<void(std::span<const uint8_t> data, bool eof, const std::string& error)>;

  // Connects to `target`; `done` is called exactly once, from the io_context.
  static void open(boost::asio::io_context& io, const UpstreamTarget& target, OpenFn done);
  // Wraps a connected plain TCP socket (tests).
  static std::shared_ptr<UpstreamConnection> from_socket(Socket socket);

  ~UpstreamConnection();
  UpstreamConnection(const UpstreamConnection&) = delete;
  UpstreamConnection& operator=(const UpstreamConnection&) = delete;

  // Writes all of `bytes` (kept valid by the caller until `done` or cancel()).
  void write(std::string_view bytes, WriteFn done);
  // Reads at most `max` bytes (the span is valid during the call only).
  void read(size_t max, ReadFn done);
  // Ends our direction (TLS close_notify, then TCP FIN) once pending writes went out; reads go on.
  void shutdown_write();
  // Drops pending write/read completions and the idle watch.
  void cancel();
  void close();
  bool is_open() const;

  bool tls() const { return tls_ != nullptr; }
  // The ALPN protocol the server selected; "" for plain TCP or when it selected none.
  const std::string& alpn() const { return alpn_; }

  // While idle (no read or write pending): `dropped` is called once when the connection can no longer
  // carry a request. Ended by cancel() or close().
  void watch_idle(std::function<void()> dropped);

 private:
  explicit UpstreamConnection(Socket socket);
  void start_tls(const UpstreamTarget& target, OpenFn done);
  void pump();  // TLS: moves bytes between the socket and the TLS stream, completes what it can
  void fail_ops(const std::string& why);
  void post_read(std::span<const uint8_t> data, bool eof, const std::string& error);

  Socket socket_;
  std::unique_ptr<TlsClientStream> tls_;
  std::string alpn_;
  uint64_t gen_ = 0;  // bumped by cancel()/close(): late completions are dropped
  bool closed_ = false;

  // Pending operations.
  OpenFn open_done_;
  WriteFn write_done_;
  std::string_view write_data_;
  size_t write_off_ = 0;
  ReadFn read_done_;
  size_t read_max_ = 0;
  std::function<void()> idle_dropped_;
  bool shutdown_wanted_ = false;
  bool shutdown_sent_ = false;

  // TLS socket I/O.
  bool sock_reading_ = false;
  bool sock_writing_ = false;
  bool sock_eof_ = false;
  std::vector<uint8_t> sock_in_;
  std::vector<uint8_t> sock_out_;
  std::vector<uint8_t> read_buf_;  // TLS: plaintext handed to a read completion
  // Plain TCP: the read buffer, allocated once per connection and never zero-filled (a 64 KiB memset
  // per exchange was ~15 % of the agent's CPU).
  std::unique_ptr<uint8_t[]> plain_buf_;
  size_t plain_cap_ = 0;
};

}  // namespace wtmesh::agent
