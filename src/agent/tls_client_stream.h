// TLS over TCP for the agent, sans-I/O: a GnuTLS client session driven through memory buffers, the
// client-side mirror of edge/tls_server_stream.h. It is a wt::ByteStream (plaintext, for the
// WebTransport-over-HTTP/2 binding) and a wt::ByteStreamWire (ciphertext, for a socket driver such as
// agent/tcp_byte_stream_driver.h); tests pump it against the edge's TlsServerStream in memory. The
// ciphertext buffers and GnuTLS transport callbacks are quic::TlsMemoryTransport's, as the edge's are.
//
// Policy: TLS 1.3 and 1.2, AEAD ciphers and ECDHE only. The server certificate is checked exactly as
// the QUIC client checks it, by the same quic::TlsClientContext (CA file or system trust, host name or
// IP SAN, optional SHA-256 pin, or pin only): one verification policy for both transports. SNI is the
// host unless it is an IP literal. ALPN offers `alpn` in order; with require_alpn the handshake fails
// unless the server selected one of them (GnuTLS alone accepts a server that ignores ALPN).
//
// Buffers are bounded (TlsClientLimits): wire_feed() takes no more ciphertext than fits, records are
// decrypted only while the plaintext buffer has room, and write() takes plaintext only while the
// outgoing ciphertext is below its cap (plus one record at most).
//
// Errors are sentences for logs and the doctor: "certificate not trusted for edge.example.com: The
// certificate is NOT trusted. ...", "server edge.example.com selected ALPN \"http/1.1\", not h2",
// "TLS handshake with edge.example.com failed: ...", "connection closed during the TLS handshake".
#pragma once

#include <gnutls/gnutls.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quic/tls_memory_transport.h"
#include "wt/byte_stream.h"

namespace wtmesh::quic {
class TlsClientContext;
}

namespace wtmesh::agent {

inline constexpr std::string_view kH2Alpn = "h2";

struct TlsClientLimits {
  size_t max_ciphertext_in = 64 * 1024;   // received from the socket, not yet decrypted
  size_t max_plaintext_in = 64 * 1024;    // decrypted, not yet consumed by the application
  size_t max_ciphertext_out = 64 * 1024;  // encrypted, not yet taken by the socket writer
};

struct TlsClientOptions {
  std::string host;                                     // verified against the certificate; SNI
  std::vector<std::string> alpn{std::string(kH2Alpn)};  // offered in this order; empty: no ALPN
  bool require_alpn = true;                             // fail unless the server selects one of `alpn`
  TlsClientLimits limits;
};

class TlsClientStream final : public wt::ByteStream, public wt::ByteStreamWire {
 public:
  // One TLS record of plaintext at most is encrypted per step.
  static constexpr size_t kMaxRecordPlaintext = quic::TlsMemoryTransport::kMaxRecordPlaintext;

  // Starts the handshake: the ClientHello is in wire_output() on return (or state() is kFailed,
  // e.g. for an invalid host name). `context` is kept for the session's life.
  TlsClientStream(std::shared_ptr<const quic::TlsClientContext> context, TlsClientOptions options);
  ~TlsClientStream() override;
  TlsClientStream(const TlsClientStream&) = delete;
  TlsClientStream& operator=(const TlsClientStream&) = delete;

  // --- wt::ByteStream ---
  void set_handler(wt::ByteStreamHandler* handler) override { handler_ = handler; }
  State state() const override { return state_; }
  const std::string& error() const override { return error_; }
  std::span<const uint8_t> readable() const override;
  void consume(size_t n) override;
  bool peer_finished() const override;
  size_t write(std::span<const uint8_t> data) override;
  size_t write_capacity() const override;
  void shutdown() override;
  void close() override;

  // --- wt::ByteStreamWire ---
  void set_wire_listener(wt::ByteStreamWireListener* listener) override { listener_ = listener; }
  size_t wire_feed(std::span<const uint8_t> bytes) override;
  size_t wire_space() const override;
  void wire_eof() override;
  void wire_failed(std::string_view why) override;
  std::span<const uint8_t> wire_output() const override;
  void wire_consume(size_t n) override;
  bool wire_write_done() const override { return sent_close_notify_ && wire_.out_held() == 0; }
  bool wire_finished() const override { return state_ == State::kClosed || state_ == State::kFailed; }

  // --- the handshake's result (empty before it completed) ---
  std::string alpn() const;     // "" when none was negotiated
  std::string version() const;  // "TLS1.3" or "TLS1.2"
  std::string cipher() const;   // e.g. "AES-128-GCM"
  // The peer ended with close_notify (false: a bare TCP EOF, which HTTP/2 framing must judge).
  bool peer_sent_close_notify() const { return close_notify_received_; }

 private:
  void setup(const quic::TlsClientContext& context);
  // Advances the handshake and decryption, then tells the handler and the wire listener; runs again
  // when a callback made progress possible, never nested.
  void process();
  void advance();
  void handshake_step();
  void fail(std::string why);
  void notify();

  std::shared_ptr<const quic::TlsClientContext> context_;
  TlsClientOptions options_;
  gnutls_session_t session_ = nullptr;
  wt::ByteStreamHandler* handler_ = nullptr;
  wt::ByteStreamWireListener* listener_ = nullptr;
  State state_ = State::kOpening;
  std::string error_;
  quic::TlsMemoryTransport wire_;  // ciphertext from and for the socket
  std::vector<uint8_t> plain_;     // decrypted, not yet consumed
  size_t plain_pos_ = 0;
  bool read_closed_ = false;
  bool close_notify_received_ = false;
  bool sent_close_notify_ = false;
  bool write_blocked_ = false;  // a write() took less than offered: on_writable is owed
  // Events owed to the handler, delivered by notify() outside GnuTLS calls.
  bool open_owed_ = false;
  bool readable_owed_ = false;
  bool closed_told_ = false;
  bool processing_ = false;
  bool again_ = false;
};

}  // namespace wtmesh::agent
