// GnuTLS server/client contexts for QUIC: credentials, trust, ALPN policy, per-session setup.
#include "quic/tls_context.h"

#include <arpa/inet.h>
#include <gnutls/crypto.h>
#include <gnutls/x509.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <type_traits>
#include <utility>

#include "common/gnutls_raii.h"
#include "quic/tls_resumption.h"

namespace wtmesh::quic {
namespace {

namespace fs = std::filesystem;

// Private-use TLS extension id that is never sent: GnuTLS' per-extension session data (freed by
// gnutls_deinit) is the only owned per-session slot left, since ngtcp2 takes gnutls_session_set_ptr.
constexpr int kStateExtId = 0xff57;
constexpr int kServerStateExtId = 0xff58;
constexpr size_t kMaxHostLength = 253;

gnutls_priority_t make_priority() {
  gnutls_priority_t prio = nullptr;
  const char* err = nullptr;
  if (int rv = gnutls_priority_init(&prio, kQuicTlsPriority, &err); rv < 0) {
    throw std::runtime_error(std::string("GnuTLS priority string rejected near '") + (err ? err : "") +
                             "': " + gnutls_strerror(rv));
  }
  return prio;
}

gnutls_certificate_credentials_t make_credentials() {
  gnutls_certificate_credentials_t cred = nullptr;
  if (int rv = gnutls_certificate_allocate_credentials(&cred); rv < 0) {
    throw std::runtime_error(std::string("gnutls_certificate_allocate_credentials failed: ") +
                             gnutls_strerror(rv));
  }
  return cred;
}

void require_readable(const fs::path& path, const char* what) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw std::runtime_error(std::string(what) + " " + path.string() + ": " +
                             (ec ? ec.message() : std::string("no such file")));
  }
}

gnutls_datum_t h3_datum() {
  return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(kH3Alpn.data())),
                        static_cast<unsigned>(kH3Alpn.size())};
}

std::optional<std::string_view> selected_alpn(gnutls_session_t session) {
  gnutls_datum_t p{};
  if (gnutls_alpn_get_selected_protocol(session, &p) != 0 || p.size == 0) return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(p.data), p.size);
}

// Runs after GnuTLS parsed the ClientHello (so ALPN selection is done). GNUTLS_ALPN_MANDATORY
// only rejects an offer without "h3"; a ClientHello with no ALPN extension must be caught here.
int server_client_hello_hook(gnutls_session_t session, unsigned htype, unsigned /*when*/, unsigned incoming,
                             const gnutls_datum_t* /*msg*/) {
  if (htype != GNUTLS_HANDSHAKE_CLIENT_HELLO || !incoming) return 0;
  return server_alpn_acceptable(selected_alpn(session)) ? 0 : GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

// The server must select "h3" (RFC 9001 §8.1); GnuTLS alone accepts a server that ignores ALPN.
// Checked on the server's Finished: a POST hook on EncryptedExtensions runs before GnuTLS parses
// them, and Finished is reached on every path (full handshake or PSK). A NewSessionTicket is kept
// for take_session_ticket() (client_ticket_received, below).
int client_finished_check(gnutls_session_t session) {
  auto sel = selected_alpn(session);
  return sel && *sel == kH3Alpn ? 0 : GNUTLS_E_NO_APPLICATION_PROTOCOL;
}

// --- client per-session state ------------------------------------------------------------------

struct ClientSessionState {
  bool use_trust = true;
  std::optional<std::array<uint8_t, 32>> pin;
  std::string host;             // NUL-terminated storage GnuTLS reads during verification
  std::string ip_raw;           // 4 or 16 bytes when host is an IP literal
  std::string failure;          // why verification failed, for logs
  std::vector<uint8_t> ticket;  // the newest NewSessionTicket's resumption data, until taken
};

// Server sessions with an SNI selector: the selector, and the credentials it chose (which must live
// as long as the session).
struct ServerSessionState {
  std::shared_ptr<const SniSelector> selector;
  std::shared_ptr<const TlsCredentials> chosen;
};

int ext_recv_never(gnutls_session_t, const unsigned char*, size_t) { return 0; }
int ext_send_nothing(gnutls_session_t, gnutls_buffer_t) { return 0; }  // 0 bytes: extension not sent

template <typename State>
constexpr int state_ext_id() {
  return std::is_same_v<State, ClientSessionState> ? kStateExtId : kServerStateExtId;
}

template <typename State>
State* session_state(gnutls_session_t session) {
  gnutls_ext_priv_data_t data = nullptr;
  if (gnutls_ext_get_data(session, state_ext_id<State>(), &data) != 0) return nullptr;
  return static_cast<State*>(data);
}

ClientSessionState* client_state(gnutls_session_t session) {
  return session_state<ClientSessionState>(session);
}

// GnuTLS hooks: one function per session, so the client's checks share it.
int client_hook(gnutls_session_t session, unsigned htype, unsigned /*when*/, unsigned incoming,
                const gnutls_datum_t* /*msg*/) {
  if (!incoming) return 0;
  if (htype == GNUTLS_HANDSHAKE_FINISHED) return client_finished_check(session);
  if (htype == GNUTLS_HANDSHAKE_NEW_SESSION_TICKET) {
    // Only recorded: the connection hands it to its owner after the library call returns.
    ClientSessionState* st = client_state(session);
    gnutls_datum_t d{};
    if (st != nullptr && gnutls_session_get_data2(session, &d) == 0) {
      st->ticket.assign(d.data, d.data + d.size);
      gnutls_free(d.data);
    }
  }
  return 0;
}

// Owned by the session: GnuTLS frees it with gnutls_deinit.
template <typename State>
bool attach_state(gnutls_session_t session, std::unique_ptr<State> state) {
  constexpr int id = state_ext_id<State>();
  const auto deinit = [](gnutls_ext_priv_data_t data) { delete static_cast<State*>(data); };
  if (gnutls_session_ext_register(session, "wtmesh session state", id, GNUTLS_EXT_TLS, ext_recv_never,
                                  ext_send_nothing, deinit, nullptr, nullptr,
                                  GNUTLS_EXT_FLAG_CLIENT_HELLO | GNUTLS_EXT_FLAG_TLS) != 0) {
    return false;
  }
  State* raw = state.release();
  gnutls_ext_set_data(session, id, raw);
  if (session_state<State>(session) != raw) {
    delete raw;
    return false;
  }
  return true;
}

// After the ClientHello is parsed and before a certificate is chosen: per-name credentials.
int server_post_client_hello(gnutls_session_t session) {
  ServerSessionState* st = session_state<ServerSessionState>(session);
  if (st == nullptr || !st->selector || !*st->selector) return 0;
  const std::string sni = server_name_of(session);
  if (sni.empty()) return 0;
  try {
    if (auto cred = (*st->selector)(sni)) {
      if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred->get()) == 0)
        st->chosen = std::move(cred);
    }
  } catch (const std::exception&) {
    // Keep the default certificate; nothing may escape into GnuTLS.
  }
  return 0;
}

std::string sha256_of(const gnutls_datum_t& der, std::array<uint8_t, 32>* out) {
  if (int rv = gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, out->data()); rv < 0) {
    return gnutls_strerror(rv);
  }
  return {};
}

// Checks the leaf's validity period (pin-only mode has no CA check that would do it).
std::string check_validity_period(const gnutls_datum_t& der) {
  gnutls_x509_crt_t crt = nullptr;
  if (gnutls_x509_crt_init(&crt) < 0) return "out of memory";
  std::string why;
  if (int rv = gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER); rv < 0) {
    why = std::string("cannot parse the server certificate: ") + gnutls_strerror(rv);
  } else {
    time_t now = std::time(nullptr);
    if (gnutls_x509_crt_get_activation_time(crt) > now) why = "server certificate is not yet valid";
    if (gnutls_x509_crt_get_expiration_time(crt) < now) why = "server certificate has expired";
  }
  gnutls_x509_crt_deinit(crt);
  return why;
}

// Runs once the server's Certificate and CertificateVerify were received (so the peer holds the
// leaf's key). Returns 0 to continue, a GnuTLS error to abort with a certificate alert.
int client_verify(gnutls_session_t session) {
  ClientSessionState* st = client_state(session);
  if (st == nullptr) return GNUTLS_E_CERTIFICATE_ERROR;
  unsigned count = 0;
  const gnutls_datum_t* peers = gnutls_certificate_get_peers(session, &count);
  if (peers == nullptr || count == 0) {
    st->failure = "server sent no certificate";
    return GNUTLS_E_CERTIFICATE_ERROR;
  }
  if (st->use_trust) {
    gnutls_typed_vdata_st data[2] = {};
    if (st->ip_raw.empty()) {
      data[0].type = GNUTLS_DT_DNS_HOSTNAME;
      data[0].data = reinterpret_cast<unsigned char*>(st->host.data());
    } else {
      data[0].type = GNUTLS_DT_IP_ADDRESS;
      data[0].data = reinterpret_cast<unsigned char*>(st->ip_raw.data());
      data[0].size = static_cast<unsigned>(st->ip_raw.size());
    }
    data[1].type = GNUTLS_DT_KEY_PURPOSE_OID;
    data[1].data = reinterpret_cast<unsigned char*>(const_cast<char*>(GNUTLS_KP_TLS_WWW_SERVER));
    unsigned status = 0;
    if (int rv = gnutls_certificate_verify_peers(session, data, 2, &status); rv < 0) {
      st->failure = std::string("certificate verification failed: ") + gnutls_strerror(rv);
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    if (status != 0) {
      gnutls_datum_t text{};
      if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
        st->failure.assign(reinterpret_cast<const char*>(text.data), text.size);
        gnutls_free(text.data);
      } else {
        st->failure = "server certificate not trusted";
      }
      return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
  } else if (std::string why = check_validity_period(peers[0]); !why.empty()) {
    st->failure = why;
    return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
  }
  if (st->pin) {
    std::array<uint8_t, 32> digest{};
    if (std::string err = sha256_of(peers[0], &digest); !err.empty()) {
      st->failure = "SHA-256 failed: " + err;
      return GNUTLS_E_CERTIFICATE_ERROR;
    }
    if (digest != *st->pin) {
      st->failure = "server certificate SHA-256 does not match the pinned hash";
      return GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR;
    }
  }
  return 0;
}

// Deinits the session unless released: keeps the setup code below linear.
class SessionGuard {
 public:
  explicit SessionGuard(gnutls_session_t s) : s_(s) {}
  SessionGuard(const SessionGuard&) = delete;
  SessionGuard& operator=(const SessionGuard&) = delete;
  ~SessionGuard() {
    if (s_ != nullptr) gnutls_deinit(s_);
  }
  gnutls_session_t release() { return std::exchange(s_, nullptr); }

 private:
  gnutls_session_t s_;
};

gnutls_session_t fail_session(const char* side, const std::string& why) {
  spdlog::error("TLS {} session setup failed: {}", side, why);
  return nullptr;
}

// Strips "[...]" from an IPv6 literal and fills `ip_raw` if the host is an IP address.
std::string normalize_host(const std::string& host, std::string* ip_raw) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  in_addr v4{};
  in6_addr v6{};
  if (::inet_pton(AF_INET, h.c_str(), &v4) == 1) {
    ip_raw->assign(reinterpret_cast<const char*>(&v4), sizeof v4);
  } else if (::inet_pton(AF_INET6, h.c_str(), &v6) == 1) {
    ip_raw->assign(reinterpret_cast<const char*>(&v6), sizeof v6);
  }
  return h;
}

}  // namespace

bool server_alpn_acceptable(std::optional<std::string_view> selected) {
  return selected && *selected == kH3Alpn;
}

std::optional<std::array<uint8_t, 32>> parse_sha256_hex(std::string_view hex) {
  if (hex.size() != 64) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::array<uint8_t, 32> out{};
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return out;
}

std::string negotiated_alpn(gnutls_session_t session) {
  if (session == nullptr) return {};
  auto sel = selected_alpn(session);
  return sel ? std::string(*sel) : std::string();
}

std::string verify_failure(gnutls_session_t session) {
  if (session == nullptr) return {};
  ClientSessionState* st = client_state(session);
  return st ? st->failure : std::string();
}

std::vector<uint8_t> take_session_ticket(gnutls_session_t session) {
  ClientSessionState* st = session == nullptr ? nullptr : client_state(session);
  return st ? std::exchange(st->ticket, {}) : std::vector<uint8_t>();
}

bool early_data_accepted(gnutls_session_t session) {
  return session != nullptr && (gnutls_session_get_flags(session) & GNUTLS_SFLAGS_EARLY_DATA) != 0;
}

bool session_resumed(gnutls_session_t session) {
  return session != nullptr && gnutls_session_is_resumed(session) != 0;
}

// --- TlsServerContext ----------------------------------------------------------------------------

TlsServerContext TlsServerContext::from_files(const fs::path& cert_pem, const fs::path& key_pem) {
  gnutls::global_init();
  require_readable(cert_pem, "TLS certificate file");
  require_readable(key_pem, "TLS private key file");
  TlsServerContext ctx;
  ctx.cred_ = make_credentials();
  ctx.priority_ = make_priority();
  if (int rv = gnutls_certificate_set_x509_key_file(ctx.cred_, cert_pem.c_str(), key_pem.c_str(),
                                                    GNUTLS_X509_FMT_PEM);
      rv < 0) {
    throw std::runtime_error("cannot load TLS certificate " + cert_pem.string() + " with key " +
                             key_pem.string() + ": " + gnutls_strerror(rv));
  }
  return ctx;
}

TlsServerContext::TlsServerContext(TlsServerContext&& other) noexcept
    : cred_(std::exchange(other.cred_, nullptr)),
      priority_(std::exchange(other.priority_, nullptr)),
      alpn_(other.alpn_),
      sni_(std::move(other.sni_)),
      resumption_(std::move(other.resumption_)) {}

void TlsServerContext::set_sni_selector(SniSelector selector) {
  sni_ = selector ? std::make_shared<const SniSelector>(std::move(selector)) : nullptr;
}

TlsServerContext& TlsServerContext::operator=(TlsServerContext&& other) noexcept {
  if (this != &other) {
    reset();
    cred_ = std::exchange(other.cred_, nullptr);
    priority_ = std::exchange(other.priority_, nullptr);
    alpn_ = other.alpn_;
    sni_ = std::move(other.sni_);
    resumption_ = std::move(other.resumption_);
  }
  return *this;
}

TlsServerContext::~TlsServerContext() { reset(); }

void TlsServerContext::reset() noexcept {
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
  cred_ = nullptr;
  priority_ = nullptr;
}

gnutls_session_t TlsServerContext::new_session(ngtcp2_crypto_conn_ref* conn_ref) const {
  if (cred_ == nullptr) return fail_session("server", "context was moved from");
  if (conn_ref == nullptr) return fail_session("server", "no ngtcp2_crypto_conn_ref");
  gnutls_session_t raw = nullptr;
  // With resumption the connection sends its ticket itself once the handshake is done (outside
  // ngtcp2's calls): GNUTLS_NO_AUTO_SEND_TICKET.
  const unsigned flags = GNUTLS_SERVER | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA |
                         (resumption_ ? GNUTLS_NO_AUTO_SEND_TICKET : 0);
  if (int rv = gnutls_init(&raw, flags); rv < 0) {
    return fail_session("server", std::string("gnutls_init: ") + gnutls_strerror(rv));
  }
  SessionGuard guard(raw);
  if (int rv = gnutls_priority_set(raw, priority_); rv < 0) {
    return fail_session("server", std::string("gnutls_priority_set: ") + gnutls_strerror(rv));
  }
  if (ngtcp2_crypto_gnutls_configure_server_session(raw) != 0) {
    return fail_session("server", "ngtcp2_crypto_gnutls_configure_server_session failed");
  }
  gnutls_session_set_ptr(raw, conn_ref);
  if (int rv = gnutls_credentials_set(raw, GNUTLS_CRD_CERTIFICATE, cred_); rv < 0) {
    return fail_session("server", std::string("gnutls_credentials_set: ") + gnutls_strerror(rv));
  }
  gnutls_datum_t alpn = h3_datum();
  if (int rv =
          gnutls_alpn_set_protocols(raw, &alpn, 1, GNUTLS_ALPN_MANDATORY | GNUTLS_ALPN_SERVER_PRECEDENCE);
      rv < 0) {
    return fail_session("server", std::string("gnutls_alpn_set_protocols: ") + gnutls_strerror(rv));
  }
  gnutls_handshake_set_hook_function(raw, GNUTLS_HANDSHAKE_CLIENT_HELLO, GNUTLS_HOOK_POST,
                                     server_client_hello_hook);
  if (resumption_) {
    const gnutls_datum_t key{resumption_->key.data(), static_cast<unsigned>(resumption_->key.size())};
    if (int rv = gnutls_session_ticket_enable_server(raw, &key); rv < 0) {
      return fail_session("server",
                          std::string("gnutls_session_ticket_enable_server: ") + gnutls_strerror(rv));
    }
    gnutls_anti_replay_enable(raw, resumption_->anti_replay);
    gnutls_record_set_max_early_data_size(raw, 0xffffffffU);  // QUIC: the transport bounds 0-RTT
  }
  if (sni_) {
    if (!attach_state(raw, std::make_unique<ServerSessionState>(ServerSessionState{sni_, nullptr}))) {
      return fail_session("server", "cannot attach the SNI state");
    }
    gnutls_handshake_set_post_client_hello_function(raw, server_post_client_hello);
  }
  return guard.release();
}

// --- TlsClientContext ----------------------------------------------------------------------------

namespace {

// Trusts the CA certificate(s) in `ca_pem`; throws naming the file.
void add_trust_file(gnutls_certificate_credentials_t cred, const fs::path& ca_pem) {
  int n = gnutls_certificate_set_x509_trust_file(cred, ca_pem.c_str(), GNUTLS_X509_FMT_PEM);
  if (n < 0) {
    throw std::runtime_error("cannot load CA certificate file " + ca_pem.string() + ": " +
                             gnutls_strerror(n));
  }
  if (n == 0) throw std::runtime_error("CA certificate file " + ca_pem.string() + ": no certificate in it");
}

}  // namespace

TlsClientContext TlsClientContext::with_ca_file(const fs::path& ca_pem) {
  gnutls::global_init();
  require_readable(ca_pem, "CA certificate file");
  TlsClientContext ctx;
  ctx.cred_ = make_credentials();
  ctx.priority_ = make_priority();
  add_trust_file(ctx.cred_, ca_pem);
  return ctx;
}

TlsClientContext TlsClientContext::with_system_trust() {
  gnutls::global_init();
  TlsClientContext ctx;
  ctx.cred_ = make_credentials();
  ctx.priority_ = make_priority();
  int n = gnutls_certificate_set_x509_system_trust(ctx.cred_);
  if (n < 0)
    throw std::runtime_error(std::string("cannot load the system trust store: ") + gnutls_strerror(n));
  if (n == 0) spdlog::warn("the system trust store is empty: no server certificate will verify");
  return ctx;
}

TlsClientContext TlsClientContext::with_system_trust_and_ca_file(const fs::path& ca_pem) {
  require_readable(ca_pem, "CA certificate file");
  TlsClientContext ctx = with_system_trust();
  add_trust_file(ctx.cred_, ca_pem);
  return ctx;
}

TlsClientContext TlsClientContext::without_verification() {
  gnutls::global_init();
  TlsClientContext ctx;
  ctx.cred_ = make_credentials();
  ctx.priority_ = make_priority();
  ctx.use_trust_ = false;
  ctx.verify_ = false;
  return ctx;
}

TlsClientContext TlsClientContext::with_pin_only(std::string sha256_hex) {
  gnutls::global_init();
  TlsClientContext ctx;
  ctx.pin_sha256(std::move(sha256_hex));  // validate before allocating
  ctx.cred_ = make_credentials();
  ctx.priority_ = make_priority();
  ctx.use_trust_ = false;
  return ctx;
}

TlsClientContext::TlsClientContext(TlsClientContext&& other) noexcept
    : cred_(std::exchange(other.cred_, nullptr)),
      priority_(std::exchange(other.priority_, nullptr)),
      use_trust_(other.use_trust_),
      verify_(other.verify_),
      pin_(other.pin_) {}

TlsClientContext& TlsClientContext::operator=(TlsClientContext&& other) noexcept {
  if (this != &other) {
    reset();
    cred_ = std::exchange(other.cred_, nullptr);
    priority_ = std::exchange(other.priority_, nullptr);
    use_trust_ = other.use_trust_;
    verify_ = other.verify_;
    pin_ = other.pin_;
  }
  return *this;
}

TlsClientContext::~TlsClientContext() { reset(); }

void TlsClientContext::reset() noexcept {
  if (cred_ != nullptr) gnutls_certificate_free_credentials(cred_);
  if (priority_ != nullptr) gnutls_priority_deinit(priority_);
  cred_ = nullptr;
  priority_ = nullptr;
}

void TlsClientContext::pin_sha256(std::string hex) {
  auto digest = parse_sha256_hex(hex);
  if (!digest)
    throw std::invalid_argument("certificate pin must be 64 hex digits (SHA-256), got '" + hex + "'");
  pin_ = *digest;
}

std::string TlsClientContext::configure_verification(gnutls_session_t session,
                                                     const std::string& host) const {
  if (cred_ == nullptr) return "context was moved from";
  auto state = std::make_unique<ClientSessionState>();
  state->host = normalize_host(host, &state->ip_raw);
  if (state->host.empty() || state->host.size() > kMaxHostLength ||
      state->host.find('\0') != std::string::npos) {
    return "invalid server name '" + host + "'";
  }
  state->use_trust = use_trust_;
  state->pin = pin_;
  if (int rv = gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred_); rv < 0) {
    return std::string("gnutls_credentials_set: ") + gnutls_strerror(rv);
  }
  if (state->ip_raw.empty()) {  // RFC 6066: no IP literals in SNI
    if (int rv = gnutls_server_name_set(session, GNUTLS_NAME_DNS, state->host.data(), state->host.size());
        rv < 0) {
      return std::string("gnutls_server_name_set: ") + gnutls_strerror(rv);
    }
  }
  if (!attach_state(session, std::move(state))) return "cannot attach session state";
  if (verify_) gnutls_session_set_verify_function(session, client_verify);
  return {};
}

gnutls_session_t TlsClientContext::new_session(ngtcp2_crypto_conn_ref* conn_ref, const std::string& host,
                                               std::span<const uint8_t> resume, bool* resuming) const {
  if (resuming != nullptr) *resuming = false;
  if (cred_ == nullptr) return fail_session("client", "context was moved from");
  if (conn_ref == nullptr) return fail_session("client", "no ngtcp2_crypto_conn_ref");
  gnutls_session_t raw = nullptr;
  if (int rv = gnutls_init(&raw, GNUTLS_CLIENT | GNUTLS_ENABLE_EARLY_DATA | GNUTLS_NO_END_OF_EARLY_DATA);
      rv < 0) {
    return fail_session("client", std::string("gnutls_init: ") + gnutls_strerror(rv));
  }
  SessionGuard guard(raw);
  if (int rv = gnutls_priority_set(raw, priority_); rv < 0) {
    return fail_session("client", std::string("gnutls_priority_set: ") + gnutls_strerror(rv));
  }
  if (ngtcp2_crypto_gnutls_configure_client_session(raw) != 0) {
    return fail_session("client", "ngtcp2_crypto_gnutls_configure_client_session failed");
  }
  gnutls_session_set_ptr(raw, conn_ref);
  gnutls_datum_t alpn = h3_datum();
  if (int rv = gnutls_alpn_set_protocols(raw, &alpn, 1, GNUTLS_ALPN_MANDATORY); rv < 0) {
    return fail_session("client", std::string("gnutls_alpn_set_protocols: ") + gnutls_strerror(rv));
  }
  if (std::string why = configure_verification(raw, host); !why.empty()) return fail_session("client", why);
  gnutls_handshake_set_hook_function(raw, GNUTLS_HANDSHAKE_ANY, GNUTLS_HOOK_POST, client_hook);
  bool took = false;
  if (!resume.empty()) {
    const gnutls_datum_t d{const_cast<unsigned char*>(resume.data()), static_cast<unsigned>(resume.size())};
    if (int rv = gnutls_session_set_data(raw, d.data, d.size); rv < 0) {
      spdlog::debug("quic: the session ticket is not usable ({}): a full handshake", gnutls_strerror(rv));
    } else {
      took = true;
    }
  }
  if (resuming != nullptr) *resuming = took;
  return guard.release();
}

}  // namespace wtmesh::quic
