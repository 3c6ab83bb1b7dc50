// A WebTransport client over HTTP/2 (draft-ietf-webtrans-http2-15), the agent's TCP fallback: TCP
// (agent/tcp_byte_stream_driver.h) + TLS with ALPN h2 (agent/tls_client_stream.h, TLS 1.3 or 1.2; the
// edge's GnuTLS offers extended master secret, which §7 requires with 1.2), one nghttp2 client
// session, and one extended CONNECT with `:protocol webtransport` whose DATA payload is a
// wt::H2Session. Callers get a wt::Session& exactly as from the QUIC client (agent/wt_client.h).
//
// House rules: nghttp2's callbacks and the byte stream's only record (or post a pump); pump() runs
// after the library returned: it feeds received bytes to nghttp2, hands the session what the callbacks
// recorded (the response, DATA, END_STREAM, the stream's close), consumes what the data source copied,
// and writes frames while the byte stream takes them. The CONNECT is sent only once the edge's
// SETTINGS said ENABLE_CONNECT_PROTOCOL = 1 and SETTINGS_WT_ENABLED = 1 (§3.1); without them the
// session ends with "the edge does not offer WebTransport over HTTP/2".
// Bounded: HTTP/2 windows of 1 MiB per stream and 4 MiB per connection are handed back as soon as the
// session took the bytes (the session's own WT_MAX_DATA bounds what it keeps); frames held for the
// byte stream: at most one nghttp2 write (mem_send) at a time.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/edge_url.h"
#include "wt/byte_stream.h"
#include "wt/h2_session.h"

struct nghttp2_session;

namespace wtmesh::quic {
class TlsClientContext;
}

namespace wtmesh::agent {

class TcpByteStreamDriver;
class TlsClientStream;

class H2WtClient final : private wt::ByteStreamHandler, private wt::H2OutputListener {
 public:
  H2WtClient(boost::asio::io_context& io, std::shared_ptr<const quic::TlsClientContext> tls,
             std::chrono::milliseconds open_timeout = std::chrono::milliseconds(10'000),
             wt::H2SessionConfig config = {});
  ~H2WtClient() override;
  H2WtClient(const H2WtClient&) = delete;
  H2WtClient& operator=(const H2WtClient&) = delete;

  // Starts TCP + TLS to the edge. False with `error` set if it cannot start.
  // `remote` set: that address is dialled (the name is still the TLS name); else edge.host is resolved.
  bool dial(const EdgeUrl& edge, std::string* error, const boost::asio::ip::tcp::endpoint* remote = nullptr);
  // TLS is open and the edge's SETTINGS arrived.
  bool handshake_completed() const { return settings_received_; }
  // Called from a fresh handler (never inside this client's calls, so it may destroy the client) when
  // handshake_completed() or closed() became true.
  void set_on_change(std::function<void()> fn) { on_change_ = std::move(fn); }
  bool closed() const { return closed_; }
  const std::string& close_reason() const { return close_reason_; }
  // What TLS negotiated ("TLS1.3 h2"), once open.
  std::string tls_summary() const;

  // One session per connection: the CONNECT goes out once the edge's SETTINGS are in. The session is
  // valid until this client is destroyed; its handler hears on_closed first.
  wt::Session* open_session(const std::string& path, const wt::HeaderPairs& extra,
                            wt::SessionHandler* handler, std::string* error);
  void close(std::string_view reason);

 private:
  struct Callbacks;
  // wt::ByteStreamHandler
  void on_open() override { post_pump(); }
  void on_readable() override { post_pump(); }
  void on_writable() override { post_pump(); }
  void on_closed(std::string_view error) override;
  // wt::H2OutputListener
  void on_output_ready() override { post_pump(); }

  void post_pump();
  void pump();
  void step();
  void submit_connect();
  void fail(std::string why);
  ssize_t read_output(uint8_t* buf, size_t length, uint32_t* flags);

  boost::asio::io_context& io_;
  std::shared_ptr<const quic::TlsClientContext> tls_;
  std::chrono::milliseconds open_timeout_;
  wt::H2SessionConfig config_;
  std::optional<EdgeUrl> edge_;
  std::unique_ptr<TlsClientStream> stream_;
  std::unique_ptr<TcpByteStreamDriver> driver_;
  nghttp2_session* h2_ = nullptr;
  std::unique_ptr<wt::H2Session> session_;
  std::string path_;
  wt::HeaderPairs extra_;
  int32_t stream_id_ = -1;
  std::vector<uint8_t> pending_out_;  // frames nghttp2 produced that the byte stream has not taken

  // Recorded by the callbacks.
  wt::H2WtSettings server_wt_;
  bool settings_received_ = false;
  uint32_t connect_protocol_ = 0;
  int status_ = 0;
  wt::HeaderPairs response_headers_;
  bool head_done_ = false;
  bool head_delivered_ = false;
  std::vector<uint8_t> data_in_;
  bool end_stream_ = false;
  bool end_delivered_ = false;
  std::optional<uint32_t> stream_closed_;
  std::string h2_error_;

  size_t taken_ = 0;  // session output the data source copied, consumed after the library returned
  bool deferred_ = false;
  bool pump_posted_ = false;
  bool in_pump_ = false;
  bool closed_ = false;
  std::function<void()> on_change_;
  bool reported_handshake_ = false;
  bool reported_closed_ = false;
  bool closing_ = false;  // close(): our direction ends once nghttp2's last frames were written
  std::string close_reason_;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
