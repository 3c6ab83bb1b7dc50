// Process-wide GnuTLS contexts for QUIC (credentials, trust, ALPN policy) and the per-connection
// gnutls_session_t they create, already wired to ngtcp2_crypto_gnutls.
//
// Lifetime: a session points at its context's credentials and priorities, so a context must outlive
// every session it made (gnutls_deinit them first). To rotate certificates, build a new context and
// keep the old one alive (e.g. shared_ptr held by each connection) until its sessions are gone.
//
// ALPN: only "h3" is spoken. The server fails the handshake with no_application_protocol (alert
// 120) when the ClientHello offers no "h3" — including when it has no ALPN extension at all, which
// GNUTLS_ALPN_MANDATORY alone lets through in GnuTLS 3.7. The client likewise refuses a server that
// does not select "h3".
#pragma once

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "quic/session_tickets.h"
#include "quic/tls_credentials.h"

namespace wtmesh::quic {

inline constexpr std::string_view kH3Alpn = "h3";

// GnuTLS priority string: TLS 1.3 only (QUIC requires it), no middlebox-compat CCS, the AEADs and
// groups QUIC stacks and Chromium use.
inline constexpr const char* kQuicTlsPriority =
    "%DISABLE_TLS13_COMPAT_MODE:NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"
    "+CHACHA20-POLY1305:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1";

class TlsServerContext {
 public:
  // Loads a certificate chain + private key (PEM). Throws std::runtime_error naming the file.
  static TlsServerContext from_files(const std::filesystem::path& cert_pem,
                                     const std::filesystem::path& key_pem);

  TlsServerContext(TlsServerContext&& other) noexcept;
  TlsServerContext& operator=(TlsServerContext&& other) noexcept;
  TlsServerContext(const TlsServerContext&) = delete;
  TlsServerContext& operator=(const TlsServerContext&) = delete;
  ~TlsServerContext();

  // Per-name certificates: after the ClientHello is parsed, a session whose SNI names a host the
  // selector knows uses the credentials it returns (the default certificate otherwise). Affects
  // sessions created afterwards.
  void set_sni_selector(SniSelector selector);

  // Session tickets and 0-RTT (quic/session_tickets.h) for sessions created afterwards: tickets
  // sealed with `ticket_key` (64 bytes: GnuTLS derives its rotating keys from it; edges that share
  // it resume each other's tickets), early data accepted at most once per ClientHello, tracked in
  // a store of `replay_capacity` keys. Throws std::invalid_argument for a key of another size.
  void enable_resumption(std::span<const uint8_t> ticket_key, size_t replay_capacity = 16384);
  // The same key and replay store as `other` (a context made to renew certificates keeps the
  // tickets working and the replays counted).
  void share_resumption(const TlsServerContext& other) { resumption_ = other.resumption_; }
  // The same ticket key and replay store as `other`, for a context used on another thread (the
  // workers of one edge, edge/edge_workers.h): a ticket issued by either resumes on both and a
  // ClientHello replayed to either is refused its early data. GnuTLS's anti-replay object keeps a
  // window start it rewrites as it goes, so each context has its own; the store they share is
  // locked and keyed by the ClientHello's binder alone (not GnuTLS's window-start prefix, which
  // differs between the two).
  void share_resumption_across_threads(const TlsServerContext& other);
  bool resumption_enabled() const { return resumption_ != nullptr; }
  const AntiReplayStore* replay_store() const;

  // A new server session for one QUIC connection (the caller owns it: gnutls_deinit). `conn_ref`
  // must stay valid for the session's life. Returns nullptr on failure (logged).
  gnutls_session_t new_session(ngtcp2_crypto_conn_ref* conn_ref) const;
  const std::string& alpn() const { return alpn_; }
  struct Resumption;  // the ticket key and the replay store (quic/tls_resumption.h)

 private:
  TlsServerContext() = default;
  void reset() noexcept;

  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  std::string alpn_{kH3Alpn};
  std::shared_ptr<const SniSelector> sni_;  // shared with the sessions (the context may move)
  std::shared_ptr<Resumption> resumption_;
};

class TlsClientContext {
 public:
  // Trusts only the CA certificate(s) in `ca_pem`. Throws std::runtime_error naming the file.
  static TlsClientContext with_ca_file(const std::filesystem::path& ca_pem);
  // Trusts the system store (a warning is logged when it is empty).
  static TlsClientContext with_system_trust();
  // Trusts exactly one leaf, by the hex SHA-256 of its DER, like a browser's serverCertificateHashes:
  // no CA, no hostname check; the leaf must be inside its validity period. Throws std::invalid_argument.
  static TlsClientContext with_pin_only(std::string sha256_hex);
  // Trusts the system store plus the CA certificate(s) in `ca_pem` (a local service's own CA).
  static TlsClientContext with_system_trust_and_ca_file(const std::filesystem::path& ca_pem);
  // Checks nothing: any certificate, any name, expired or not (`wtmesh http --upstream-insecure`, for a
  // self-signed local service on this machine; never for the edge). SNI is still sent.
  static TlsClientContext without_verification();

  TlsClientContext(TlsClientContext&& other) noexcept;
  TlsClientContext& operator=(TlsClientContext&& other) noexcept;
  TlsClientContext(const TlsClientContext&) = delete;
  TlsClientContext& operator=(const TlsClientContext&) = delete;
  ~TlsClientContext();

  // Extra check on top of the trust: the leaf's SHA-256 (hex, any case) must equal this.
  // Throws std::invalid_argument unless it is 64 hex digits. Affects sessions created afterwards.
  void pin_sha256(std::string hex);

  // A new client session: ALPN "h3", SNI = host unless it is an IP literal ("[v6]" accepted),
  // certificate checked against the trust and host (DNS name or IP SAN), plus the pin if set.
  // With `resume` (a ticket from an earlier connection to the same host, checked then), the
  // session offers it; *resuming says whether GnuTLS took it. The session keeps each ticket the
  // server sends for take_session_ticket(). The caller owns it (gnutls_deinit). Returns nullptr on
  // failure (logged).
  gnutls_session_t new_session(ngtcp2_crypto_conn_ref* conn_ref, const std::string& host,
                               std::span<const uint8_t> resume = {}, bool* resuming = nullptr) const;

  // The same trust policy on a client session of another transport (TLS over TCP:
  // agent/tls_client_stream.h): sets the credentials, SNI = host unless it is an IP literal, and the
  // certificate check (trust + host, or the validity period in pin-only mode; plus the pin). Why a
  // certificate was refused is then verify_failure(session). Returns "" on success, else why not.
  // The context must outlive the session.
  std::string configure_verification(gnutls_session_t session, const std::string& host) const;

 private:
  TlsClientContext() = default;
  void reset() noexcept;

  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_priority_t priority_ = nullptr;
  bool use_trust_ = true;  // false for with_pin_only
  bool verify_ = true;     // false for without_verification
  std::optional<std::array<uint8_t, 32>> pin_;
};

// The ALPN protocol negotiated on `session` ("" if none yet), for logs.
std::string negotiated_alpn(gnutls_session_t session);

// Why a client session rejected the server certificate ("" if it did not), for logs.
std::string verify_failure(gnutls_session_t session);

// The newest session ticket a client session received and has not handed out yet (the resumption
// data GnuTLS exports after a NewSessionTicket), or empty.
std::vector<uint8_t> take_session_ticket(gnutls_session_t session);
// After the handshake: whether the server accepted our (a client's) or the client's (a server's)
// early data, and whether the session was resumed from a ticket.
bool early_data_accepted(gnutls_session_t session);
bool session_resumed(gnutls_session_t session);

// Server ALPN policy as a pure decision, used by the handshake hook: accept iff the ALPN protocol
// GnuTLS selected from the client's offer (nullopt when nothing matched or no ALPN was offered)
// is "h3".
bool server_alpn_acceptable(std::optional<std::string_view> selected);

// Parses 64 hex digits (any case) into a SHA-256 digest; nullopt otherwise.
std::optional<std::array<uint8_t, 32>> parse_sha256_hex(std::string_view hex);

}  // namespace wtmesh::quic
