#include "agent/tls_client_stream.h"

#include <algorithm>

#include "quic/tls_context.h"

namespace wtmesh::agent {
namespace {

// TLS 1.3 and 1.2 only; AEAD ciphers (AES-128-GCM first, as the edge prefers) and ECDHE key exchange
// only, so a TLS 1.2 server cannot pick CBC or static RSA.
constexpr const char* kTcpClientPriority =
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"
    "-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1";

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " or ") + n;
  return out;
}

}  // namespace

TlsClientStream::TlsClientStream(std::shared_ptr<const quic::TlsClientContext> context,
                                 TlsClientOptions options)
    : context_(std::move(context)), options_(std::move(options)) {
  if (!context_) {
    fail("no TLS client context");
    return;
  }
  setup(*context_);
  if (state_ == State::kOpening) process();  // writes the ClientHello
}

TlsClientStream::~TlsClientStream() {
  if (session_) gnutls_deinit(session_);
}

void TlsClientStream::setup(const quic::TlsClientContext& context) {
  if (int rv = gnutls_init(&session_, GNUTLS_CLIENT | GNUTLS_NONBLOCK | GNUTLS_NO_SIGNAL); rv < 0) {
    session_ = nullptr;
    fail(std::string("gnutls_init: ") + gnutls_strerror(rv));
    return;
  }
  const char* err = nullptr;
  if (int rv = gnutls_priority_set_direct(session_, kTcpClientPriority, &err); rv < 0) {
    fail(std::string("GnuTLS priority string rejected: ") + gnutls_strerror(rv));
    return;
  }
  if (std::string why = context.configure_verification(session_, options_.host); !why.empty()) {
    fail("TLS setup for " + options_.host + ": " + why);
    return;
  }
  if (!options_.alpn.empty()) {
    std::vector<gnutls_datum_t> protos;
    for (auto& a : options_.alpn) {
      protos.push_back({reinterpret_cast<unsigned char*>(a.data()), static_cast<unsigned>(a.size())});
    }
    if (int rv = gnutls_alpn_set_protocols(session_, protos.data(), static_cast<unsigned>(protos.size()), 0);
        rv < 0) {
      fail(std::string("gnutls_alpn_set_protocols: ") + gnutls_strerror(rv));
      return;
    }
  }
  // The driver's timer bounds the handshake; GnuTLS' own timeout would need a clock it reads itself.
  gnutls_handshake_set_timeout(session_, 0);
  wire_.attach(session_);
}

void TlsClientStream::fail(std::string why) {
  if (state_ == State::kFailed || state_ == State::kClosed) return;
  state_ = State::kFailed;
  read_closed_ = true;
  error_ = std::move(why);
}

void TlsClientStream::process() {
  if (processing_) {  // called from one of our callbacks: the outer loop runs again
    again_ = true;
    return;
  }
  processing_ = true;
  do {
    again_ = false;
    advance();
    notify();
  } while (again_);
  processing_ = false;
}

void TlsClientStream::advance() {
  if (session_ == nullptr) return;
  if (state_ == State::kOpening) handshake_step();
  // Decrypt while the application has room; GnuTLS keeps the rest of a partly read record. After a
  // post-handshake message (a TLS 1.3 ticket) GnuTLS answers AGAIN even with records buffered.
  for (int guard = 0; guard < 1024 && state_ == State::kOpen && !read_closed_; ++guard) {
    const size_t held = plain_.size() - plain_pos_;
    if (held >= options_.limits.max_plaintext_in) break;
    const size_t room = std::min(options_.limits.max_plaintext_in - held, kMaxRecordPlaintext);
    const size_t old = plain_.size();
    plain_.resize(old + room);
    const ssize_t rv = gnutls_record_recv(session_, plain_.data() + old, room);
    plain_.resize(old + static_cast<size_t>(std::max<ssize_t>(rv, 0)));
    if (rv > 0) {
      readable_owed_ = true;
      continue;
    }
    if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
      if (wire_.in_held() > 0 || gnutls_record_check_pending(session_) > 0) continue;
      break;
    }
    if (rv == 0 || rv == GNUTLS_E_PREMATURE_TERMINATION) {
      close_notify_received_ = rv == 0;
      read_closed_ = true;
      readable_owed_ = true;
      break;
    }
    if (gnutls_error_is_fatal(static_cast<int>(rv)) == 0) continue;  // e.g. a warning alert
    fail("TLS record error from " + options_.host + ": " + gnutls_strerror(static_cast<int>(rv)));
  }
  if (state_ == State::kOpen && sent_close_notify_ && peer_finished() && wire_.out_held() == 0) {
    state_ = State::kClosed;  // both directions finished and everything was written
  }
}

void TlsClientStream::handshake_step() {
  int rv;
  do {
    rv = gnutls_handshake(session_);
  } while (rv == GNUTLS_E_INTERRUPTED);
  if (rv == GNUTLS_E_PREMATURE_TERMINATION || (rv == GNUTLS_E_AGAIN && wire_.drained())) {
    fail("connection closed during the TLS handshake with " + options_.host);
    return;
  }
  if (rv == GNUTLS_E_AGAIN) return;
  const std::string& host = options_.host;
  if (rv < 0) {
    const std::string cert = quic::verify_failure(session_);
    std::string why;
    if (!cert.empty() || rv == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR || rv == GNUTLS_E_CERTIFICATE_ERROR) {
      why = "certificate not trusted for " + host + ": " + (cert.empty() ? gnutls_strerror(rv) : cert);
    } else if (rv == GNUTLS_E_FATAL_ALERT_RECEIVED) {
      why = "TLS handshake with " + host + " failed: the server sent alert " +
            gnutls_alert_get_name(gnutls_alert_get(session_));
    } else {
      why = "TLS handshake with " + host + " failed: " + gnutls_strerror(rv);
    }
    if (rv != GNUTLS_E_FATAL_ALERT_RECEIVED)
      gnutls_alert_send_appropriate(session_, rv);  // tell the server why
    fail(std::move(why));
    return;
  }
  if (options_.require_alpn && !options_.alpn.empty()) {
    const std::string selected = alpn();
    if (std::find(options_.alpn.begin(), options_.alpn.end(), selected) == options_.alpn.end()) {
      gnutls_alert_send(session_, GNUTLS_AL_FATAL, GNUTLS_A_NO_APPLICATION_PROTOCOL);
      fail("server " + host +
           (selected.empty() ? " selected no ALPN protocol" : " selected ALPN \"" + selected + "\"") +
           ", wanted " + join(options_.alpn));
      return;
    }
  }
  state_ = State::kOpen;
  open_owed_ = true;
}

void TlsClientStream::notify() {
  if (open_owed_) {
    open_owed_ = false;
    if (handler_ && state_ == State::kOpen) handler_->on_open();
  }
  if (readable_owed_) {
    readable_owed_ = false;
    if (handler_ && !closed_told_) handler_->on_readable();
  }
  if (write_blocked_ && write_capacity() > 0) {
    write_blocked_ = false;
    if (handler_ && !closed_told_) handler_->on_writable();
  }
  if (wire_finished() && !closed_told_) {
    closed_told_ = true;
    if (handler_) handler_->on_closed(error_);
  }
  if (listener_) listener_->on_wire_ready();
}

std::span<const uint8_t> TlsClientStream::readable() const {
  return std::span<const uint8_t>(plain_).subspan(plain_pos_);
}

void TlsClientStream::consume(size_t n) {
  plain_pos_ += std::min(n, plain_.size() - plain_pos_);
  quic::compact_consumed(plain_, plain_pos_);
  process();
}

bool TlsClientStream::peer_finished() const { return read_closed_ && plain_.size() == plain_pos_; }

size_t TlsClientStream::write_capacity() const {
  if (state_ != State::kOpen || sent_close_notify_) return 0;
  return wire_.space_out(options_.limits.max_ciphertext_out);
}

size_t TlsClientStream::write(std::span<const uint8_t> data) {
  int error = 0;
  const size_t taken =
      write_capacity() > 0 ? wire_.send_records(data, options_.limits.max_ciphertext_out, &error) : 0;
  if (error < 0) fail("TLS send to " + options_.host + " failed: " + gnutls_strerror(error));
  if (taken < data.size() && state_ == State::kOpen && !sent_close_notify_) write_blocked_ = true;
  if (taken > 0 || state_ == State::kFailed) process();
  return taken;
}

void TlsClientStream::shutdown() {
  if (state_ == State::kOpening) {
    close();
    return;
  }
  if (state_ != State::kOpen || sent_close_notify_) return;
  gnutls_bye(session_, GNUTLS_SHUT_WR);  // push never blocks, so this completes
  sent_close_notify_ = true;
  write_blocked_ = false;
  process();
}

void TlsClientStream::close() {
  if (state_ == State::kClosed || state_ == State::kFailed) return;
  state_ = State::kClosed;
  read_closed_ = true;
  wire_.clear_output();
  process();
}

size_t TlsClientStream::wire_space() const {
  if (wire_finished()) return 0;
  return wire_.space_in(options_.limits.max_ciphertext_in);
}

size_t TlsClientStream::wire_feed(std::span<const uint8_t> bytes) {
  const size_t n = std::min(bytes.size(), wire_space());
  wire_.feed(bytes.first(n));
  if (n > 0) process();
  return n;
}

void TlsClientStream::wire_eof() {
  if (wire_.eof()) return;
  wire_.set_eof();
  process();
}

void TlsClientStream::wire_failed(std::string_view why) {
  if (wire_finished()) return;
  wire_.clear_output();
  fail(std::string(why));
  process();
}

std::span<const uint8_t> TlsClientStream::wire_output() const { return wire_.output(); }

void TlsClientStream::wire_consume(size_t n) {
  wire_.consume_output(n);
  process();
}

std::string TlsClientStream::alpn() const {
  gnutls_datum_t p{};
  if (session_ == nullptr || gnutls_alpn_get_selected_protocol(session_, &p) != 0) return {};
  return std::string(reinterpret_cast<const char*>(p.data), p.size);
}

std::string TlsClientStream::version() const {
  if (session_ == nullptr || state_ == State::kOpening) return {};
  const char* v = gnutls_protocol_get_name(gnutls_protocol_get_version(session_));
  return v ? v : "";
}

std::string TlsClientStream::cipher() const {
  if (session_ == nullptr || state_ == State::kOpening) return {};
  const char* c = gnutls_cipher_get_name(gnutls_cipher_get(session_));
  return c ? c : "";
}

}  // namespace wtmesh::agent
