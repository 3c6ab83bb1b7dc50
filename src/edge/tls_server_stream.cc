#include "edge/tls_server_stream.h"

#include <algorithm>
#include <cstring>  // strnlen
#include <stdexcept>
#include <system_error>

#include "edge/name_certs.h"

namespace wtmesh::edge {
namespace {

// TLS 1.2 and 1.3 only; the server's preference wins. GnuTLS's NORMAL puts SECP256R1 before X25519, and
// with %SERVER_PRECEDENCE a client that sent only an X25519 share (curl, Python, Chromium) would be sent
// a HelloRetryRequest: one more round trip per connection. X25519 first avoids it.
// Ciphers: AEADs only, AES-128-GCM first (as QUIC's own packets use): its 10 AES rounds against
// AES-256's 14 are a quarter less of the encryption on every byte the edge relays, at a strength no
// attack on TLS comes near. ChaCha20-Poly1305 stays for clients that offer nothing else.
constexpr const char* kTcpTlsPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:"
    "+GROUP-SECP384R1:+GROUP-SECP521R1:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "%SERVER_PRECEDENCE";

void global_init() {
  static const int rv = gnutls_global_init();
  if (rv < 0) throw std::runtime_error(std::string("gnutls_global_init failed: ") + gnutls_strerror(rv));
}

}  // namespace

std::shared_ptr<const TlsServerConfig> TlsServerConfig::from_files(const std::filesystem::path& cert_pem,
                                                                   const std::filesystem::path& key_pem,
                                                                   SniSelector sni_selector, bool offer_h2,
                                                                   std::span<const uint8_t> ticket_key) {
  global_init();
  for (const auto& p : {cert_pem, key_pem}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p, ec)) {
      throw std::runtime_error("TLS file " + p.string() + ": " +
                               (ec ? ec.message() : std::string("no such file")));
    }
  }
  std::shared_ptr<TlsServerConfig> cfg(new TlsServerConfig());
  cfg->sni_selector_ = std::move(sni_selector);
  cfg->offer_h2_ = offer_h2;
  if (int rv = gnutls_certificate_allocate_credentials(&cfg->cred_); rv < 0) {
    throw std::runtime_error(std::string("gnutls_certificate_allocate_credentials: ") + gnutls_strerror(rv));
  }
  if (int rv = gnutls_certificate_set_x509_key_file2(cfg->cred_, cert_pem.c_str(), key_pem.c_str(),
                                                     GNUTLS_X509_FMT_PEM, nullptr, 0);
      rv < 0) {
    throw std::runtime_error("cannot load TLS certificate " + cert_pem.string() + " / key " +
                             key_pem.string() + ": " + gnutls_strerror(rv));
  }
  const char* err = nullptr;
  if (int rv = gnutls_priority_init(&cfg->priority_, kTcpTlsPriority, &err); rv < 0) {
    throw std::runtime_error(std::string("GnuTLS priority string rejected: ") + gnutls_strerror(rv));
  }
  if (!ticket_key.empty()) {
    cfg->ticket_key_.data = static_cast<unsigned char*>(gnutls_malloc(ticket_key.size()));
    if (cfg->ticket_key_.data == nullptr) throw std::bad_alloc();
    std::memcpy(cfg->ticket_key_.data, ticket_key.data(), ticket_key.size());
    cfg->ticket_key_.size = static_cast<unsigned>(ticket_key.size());
  } else if (int rv = gnutls_session_ticket_key_generate(&cfg->ticket_key_); rv < 0) {
    throw std::runtime_error(std::string("gnutls_session_ticket_key_generate: ") + gnutls_strerror(rv));
  }
  return cfg;
}

std::vector<uint8_t> TlsServerConfig::new_ticket_key() {
  global_init();
  gnutls_datum_t key{};
  if (int rv = gnutls_session_ticket_key_generate(&key); rv < 0) {
    throw std::runtime_error(std::string("gnutls_session_ticket_key_generate: ") + gnutls_strerror(rv));
  }
  std::vector<uint8_t> out(key.data, key.data + key.size);
  gnutls_memset(key.data, 0, key.size);
  gnutls_free(key.data);
  return out;
}

TlsServerConfig::~TlsServerConfig() {
  if (ticket_key_.data) {
    gnutls_memset(ticket_key_.data, 0, ticket_key_.size);
    gnutls_free(ticket_key_.data);
  }
  if (priority_) gnutls_priority_deinit(priority_);
  if (cred_) gnutls_certificate_free_credentials(cred_);
}

TlsServerStream::TlsServerStream(std::shared_ptr<const TlsServerConfig> config, Limits limits)
    : config_(std::move(config)), limits_(limits) {
  int rv =
      gnutls_init(&session_, GNUTLS_SERVER | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL | GNUTLS_NO_AUTO_SEND_TICKET);
  if (rv < 0) {
    session_ = nullptr;
    fail("gnutls_init", rv);
    return;
  }
  if ((rv = gnutls_priority_set(session_, config_->priority())) < 0 ||
      (rv = gnutls_credentials_set(session_, GNUTLS_CRD_CERTIFICATE, config_->credentials())) < 0 ||
      (rv = gnutls_session_ticket_enable_server(session_, &config_->ticket_key())) < 0) {
    fail("TLS session setup", rv);
    return;
  }
  auto datum = [](std::string_view p) {
    return gnutls_datum_t{reinterpret_cast<unsigned char*>(const_cast<char*>(p.data())),
                          static_cast<unsigned>(p.size())};
  };
  const gnutls_datum_t alpn[] = {datum(kH2Alpn), datum(kHttp11Alpn)};
  const bool h2 = config_->offer_h2();
  gnutls_alpn_set_protocols(session_, h2 ? alpn : alpn + 1, h2 ? 2 : 1, GNUTLS_ALPN_SERVER_PRECEDENCE);
  gnutls_certificate_server_set_request(session_, GNUTLS_CERT_IGNORE);
  // Our idle timer bounds the handshake; GnuTLS' own timeout would need a clock it reads itself.
  gnutls_handshake_set_timeout(session_, 0);
  wire_.attach(session_);
  gnutls_session_set_ptr(session_, this);  // for post_client_hello (the transport pointer is wire_'s)
  if (config_->sni_selector()) gnutls_handshake_set_post_client_hello_function(session_, &post_client_hello);
}

int TlsServerStream::post_client_hello(gnutls_session_t session) {
  auto* self = static_cast<TlsServerStream*>(gnutls_session_get_ptr(session));
  const std::string sni = self->server_name();
  if (sni.empty()) return 0;
  try {
    if (auto cred = self->config_->sni_selector()(sni)) {
      if (gnutls_credentials_set(session, GNUTLS_CRD_CERTIFICATE, cred->get()) == 0)
        self->sni_cred_ = std::move(cred);
    }
  } catch (const std::exception&) {
    // Keep the default certificate; nothing may escape into GnuTLS.
  }
  return 0;
}

TlsServerStream::~TlsServerStream() {
  if (session_) gnutls_deinit(session_);
}

void TlsServerStream::fail(std::string what, int rv) {
  if (state_ == State::kFailed) return;
  state_ = State::kFailed;
  read_closed_ = true;
  error_ = std::move(what);
  if (rv < 0) error_ += std::string(": ") + gnutls_strerror(rv);
}

size_t TlsServerStream::space_in() const {
  if (state_ == State::kFailed) return 0;
  return wire_.space_in(limits_.max_ciphertext_in);
}

size_t TlsServerStream::feed(std::span<const uint8_t> ciphertext) {
  const size_t n = std::min(ciphertext.size(), space_in());
  wire_.feed(ciphertext.first(n));
  advance();
  return n;
}

void TlsServerStream::feed_eof() {
  wire_.set_eof();
  advance();
}

void TlsServerStream::advance() {
  if (session_ == nullptr) return;
  if (state_ == State::kHandshaking) {
    int rv;
    do {
      rv = gnutls_handshake(session_);
    } while (rv == GNUTLS_E_INTERRUPTED);
    if (rv == GNUTLS_E_AGAIN) {
      if (wire_.drained()) fail("connection closed during the TLS handshake", 0);
      return;
    }
    if (rv < 0) {
      fail("TLS handshake failed", rv);
      return;
    }
    state_ = State::kOpen;
    // TLS 1.3: GnuTLS would send the ticket with its Finished, before the client's Finished; sent
    // now, it answers the client's Finished at once (see the header). A failure only loses resumption.
    if (gnutls_protocol_get_version(session_) == GNUTLS_TLS1_3) gnutls_session_ticket_send(session_, 1, 0);
  }
  // Decrypt while the application has room; GnuTLS keeps the rest of a partly read record.
  while (!read_closed_ && (state_ == State::kOpen || state_ == State::kClosed)) {
    const size_t held = plain_.size() - plain_pos_;
    if (held >= limits_.max_plaintext_in) return;
    const size_t room = std::min(limits_.max_plaintext_in - held, kMaxRecordPlaintext);
    const size_t old = plain_.size();
    plain_.resize(old + room);
    ssize_t rv = gnutls_record_recv(session_, plain_.data() + old, room);
    plain_.resize(old + static_cast<size_t>(std::max<ssize_t>(rv, 0)));
    if (rv > 0) continue;
    if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
      if (rv == GNUTLS_E_AGAIN) return;
      continue;
    }
    if (rv == 0 || rv == GNUTLS_E_PREMATURE_TERMINATION) {
      // close_notify, or a TCP EOF without one (common for HTTP clients): no more input.
      read_closed_ = true;
      if (state_ == State::kOpen) state_ = State::kClosed;
      return;
    }
    if (gnutls_error_is_fatal(static_cast<int>(rv)) == 0) continue;  // e.g. a warning alert
    fail("TLS record error", static_cast<int>(rv));
    return;
  }
}

std::span<const uint8_t> TlsServerStream::plaintext() const {
  return std::span<const uint8_t>(plain_).subspan(plain_pos_);
}

void TlsServerStream::consume_plaintext(size_t n) {
  plain_pos_ += std::min(n, plain_.size() - plain_pos_);
  quic::compact_consumed(plain_, plain_pos_);
  advance();
}

bool TlsServerStream::peer_finished() const { return read_closed_ && plain_.size() == plain_pos_; }

size_t TlsServerStream::write_capacity() const {
  // After the peer's close_notify (or EOF) our direction stays open until close(): an upgraded
  // connection (WebSocket) half-closed by the client still gets the rest of the server's bytes.
  if (sent_close_ || (state_ != State::kOpen && state_ != State::kClosed)) return 0;
  return wire_.space_out(limits_.max_ciphertext_out);
}

size_t TlsServerStream::write(std::span<const uint8_t> data) {
  if (write_capacity() == 0) return 0;
  int error = 0;
  const size_t taken = wire_.send_records(data, limits_.max_ciphertext_out, &error);
  if (error < 0) fail("TLS send failed", error);
  return taken;
}

void TlsServerStream::close() {
  if (state_ != State::kOpen && state_ != State::kClosed) return;
  if (session_ && !sent_close_) gnutls_bye(session_, GNUTLS_SHUT_WR);  // push never blocks: completes
  sent_close_ = true;
  state_ = State::kClosed;
}

std::span<const uint8_t> TlsServerStream::ciphertext() const { return wire_.output(); }

void TlsServerStream::consume_ciphertext(size_t n) { wire_.consume_output(n); }

void TlsServerStream::take_ciphertext(std::vector<uint8_t>& into) { wire_.take_output(into); }

std::string TlsServerStream::alpn() const {
  gnutls_datum_t p{};
  if (session_ == nullptr || gnutls_alpn_get_selected_protocol(session_, &p) != 0) return {};
  return std::string(reinterpret_cast<const char*>(p.data), p.size);
}

std::string TlsServerStream::server_name() const {
  return session_ == nullptr ? std::string() : quic::server_name_of(session_);
}

std::string TlsServerStream::version() const {
  if (session_ == nullptr || state_ == State::kHandshaking) return {};
  const char* v = gnutls_protocol_get_name(gnutls_protocol_get_version(session_));
  return v ? v : "";
}

std::string TlsServerStream::cipher() const {
  if (session_ == nullptr || (state_ != State::kOpen && state_ != State::kClosed)) return {};
  const char* c = gnutls_cipher_get_name(gnutls_cipher_get(session_));
  return c ? c : "";
}

bool TlsServerStream::resumed() const {
  return session_ != nullptr && state_ != State::kHandshaking && gnutls_session_is_resumed(session_) != 0;
}

}  // namespace wtmesh::edge
