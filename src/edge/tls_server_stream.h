// TLS over TCP for the edge's public HTTPS listener, sans-I/O: a GnuTLS server session driven through
// memory buffers (ciphertext in → plaintext out, plaintext in → ciphertext out), so it is tested
// against a GnuTLS client without sockets and the Asio glue only moves bytes. The ciphertext buffers
// and GnuTLS transport callbacks are quic::TlsMemoryTransport's, as the agent's TlsClientStream's are.
//
// TLS 1.2 and 1.3; ALPN "h2" (when the config offers HTTP/2) and "http/1.1" are offered, the server's
// order winning (a client that offers other protocols only, or no ALPN, still gets HTTP/1.1); SNI is optional
// and only reported. X25519 is the preferred key exchange, so clients that send only an X25519 key share
// (OpenSSL, browsers) get no HelloRetryRequest round trip. Session tickets are issued (TLS 1.3: right after
// the handshake), so clients resume without certificate signatures; the ticket flight also acknowledges the
// client's Finished at once, so a client without TCP_NODELAY does not hold its first request back for the
// server's delayed ACK (~40 ms). Every buffer is bounded (Limits): feed() takes no more ciphertext than fits,
// records are decrypted only while the plaintext buffer has room, and write() takes plaintext only while the
// outgoing ciphertext buffer is below its cap, so a slow reader on either side stops the other instead of
// growing memory.
#pragma once

#include <gnutls/gnutls.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quic/tls_credentials.h"
#include "quic/tls_memory_transport.h"

namespace wtmesh::edge {

inline constexpr std::string_view kHttp11Alpn = "http/1.1";
inline constexpr std::string_view kH2Alpn = "h2";

// Per-name credentials by SNI (edge/name_certs.h issues them); the QUIC listener uses the same hook.
using quic::SniSelector;
using quic::TlsCredentials;

// Credentials and priorities shared by every public TLS connection. To rotate certificates build a
// new one; sessions keep the shared_ptr they started with.
class TlsServerConfig {
 public:
  // Loads a PEM certificate chain + private key. Throws std::runtime_error naming the file.
  // `ticket_key`: the session-ticket key to use (the workers of one edge share one, so a ticket works
  // on every worker's listener); empty: a fresh random one.
  static std::shared_ptr<const TlsServerConfig> from_files(const std::filesystem::path& cert_pem,
                                                           const std::filesystem::path& key_pem,
                                                           SniSelector sni_selector = {},
                                                           bool offer_h2 = false,
                                                           std::span<const uint8_t> ticket_key = {});
  // A fresh random session-ticket key (the size GnuTLS wants).
  static std::vector<uint8_t> new_ticket_key();
  ~TlsServerConfig();
  TlsServerConfig(const TlsServerConfig&) = delete;
  TlsServerConfig& operator=(const TlsServerConfig&) = delete;

  gnutls_certificate_credentials_t credentials() const { return cred_; }
  gnutls_priority_t priority() const { return priority_; }
  const SniSelector& sni_selector() const { return sni_selector_; }
  // ALPN offers "h2" before "http/1.1".
  bool offer_h2() const { return offer_h2_; }
  // Key of the session tickets of this config's sessions (GnuTLS rotates the keys it derives from it).
  const gnutls_datum_t& ticket_key() const { return ticket_key_; }

 private:
  TlsServerConfig() = default;
  SniSelector sni_selector_;
  bool offer_h2_ = false;
  gnutls_datum_t ticket_key_{};
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
};

struct TlsStreamLimits {
  size_t max_ciphertext_in = 64 * 1024;   // received from the socket, not yet decrypted
  size_t max_plaintext_in = 64 * 1024;    // decrypted, not yet taken by the application
  size_t max_ciphertext_out = 64 * 1024;  // encrypted, not yet taken by the socket writer
};

class TlsServerStream {
 public:
  using Limits = TlsStreamLimits;
  // One TLS record of plaintext at most is encrypted per write() step, so ciphertext out never
  // exceeds max_ciphertext_out + one record.
  static constexpr size_t kMaxRecordPlaintext = quic::TlsMemoryTransport::kMaxRecordPlaintext;

  enum class State {
    kHandshaking,
    kOpen,
    kClosed,  // the peer finished (close_notify or EOF; we may still write) or we sent close_notify
    kFailed,  // handshake or record error; error() says which
  };

  explicit TlsServerStream(std::shared_ptr<const TlsServerConfig> config, Limits limits = {});
  ~TlsServerStream();
  TlsServerStream(const TlsServerStream&) = delete;
  TlsServerStream& operator=(const TlsServerStream&) = delete;

  // --- socket side ---
  // Ciphertext read from the socket; returns how many bytes were taken (at most space_in()).
  size_t feed(std::span<const uint8_t> ciphertext);
  size_t space_in() const;
  // The socket reached EOF (or failed): no more ciphertext will come.
  void feed_eof();
  // Ciphertext to write to the socket, and how much of it was written.
  std::span<const uint8_t> ciphertext() const;
  void consume_ciphertext(size_t n);
  // Moves all pending ciphertext into `into` (replacing its contents) and empties the output: the
  // socket writer's buffer and ours swap storage instead of copying when nothing was consumed yet.
  void take_ciphertext(std::vector<uint8_t>& into);

  // --- application side ---
  // Decrypted bytes in order, and how many the application used.
  std::span<const uint8_t> plaintext() const;
  void consume_plaintext(size_t n);
  // No more plaintext will arrive (close_notify, EOF or failure) and plaintext() is empty.
  bool peer_finished() const;
  // Encrypts up to write_capacity() bytes; returns how many were taken (0 while handshaking).
  size_t write(std::span<const uint8_t> data);
  size_t write_capacity() const;
  // Queues close_notify; later writes take nothing. (The peer's close_notify alone does not stop
  // writes: TLS closes each direction on its own.)
  void close();

  State state() const { return state_; }
  const std::string& error() const { return error_; }
  std::string alpn() const;         // "" when none was negotiated
  std::string server_name() const;  // SNI host name, "" when absent
  std::string version() const;      // "TLS1.3", "TLS1.2", or "" before the handshake
  std::string cipher() const;       // the record cipher, e.g. "AES-128-GCM"; "" unless handshake done
  bool resumed() const;             // the handshake resumed an earlier session (ticket)
  size_t buffered_bytes() const { return wire_.in_held() + plain_.size() - plain_pos_ + wire_.out_held(); }

 private:
  static int post_client_hello(gnutls_session_t session);
  // Runs the handshake / decrypts records as far as the buffers allow.
  void advance();
  void fail(std::string what, int rv);

  std::shared_ptr<const TlsServerConfig> config_;
  std::shared_ptr<const TlsCredentials> sni_cred_;  // credentials chosen for the SNI name, if any
  Limits limits_;
  gnutls_session_t session_ = nullptr;
  State state_ = State::kHandshaking;
  std::string error_;
  quic::TlsMemoryTransport wire_;  // ciphertext from and for the socket
  // Decrypted bytes; grown by up to one record per read without zero-filling (a 16 KiB memset per
  // gnutls_record_recv call, mostly returning GNUTLS_E_AGAIN, was ~5 % of the edge's CPU).
  template <class T>
  struct NoInitAlloc : std::allocator<T> {
    template <class U>
    struct rebind {
      using other = NoInitAlloc<U>;
    };
    NoInitAlloc() = default;
    template <class U>
    NoInitAlloc(const NoInitAlloc<U>&) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... A>
    void construct(U* p, A&&... a) {
      ::new (static_cast<void*>(p)) U(std::forward<A>(a)...);
    }
  };
  std::vector<uint8_t, NoInitAlloc<uint8_t>> plain_;
  size_t plain_pos_ = 0;
  bool read_closed_ = false;
  bool sent_close_ = false;  // close() queued our close_notify
};

}  // namespace wtmesh::edge
