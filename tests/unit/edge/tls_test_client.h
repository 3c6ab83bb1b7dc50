// A GnuTLS client session over memory buffers, to talk to edge::TlsServerStream without sockets.
#pragma once

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <cstring>
#include <filesystem>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../support/temp_dir.h"
#include "quic/certs.h"

namespace wtmesh::edge::test {

using wtmesh::test::TempDir;

class MemoryTlsClient {
 public:
  // `priority` nullptr = GnuTLS defaults; `alpn` empty = no ALPN extension; `sni` empty = none;
  // `init_flags` are added to gnutls_init's (GNUTLS_KEY_SHARE_TOP: one key share, as OpenSSL sends).
  MemoryTlsClient(const std::filesystem::path& ca, const std::string& verify_host,
                  const char* priority = nullptr, std::vector<std::string> alpn = {"h2", "http/1.1"},
                  const std::string& sni = "", unsigned init_flags = 0)
      : alpn_(std::move(alpn)) {
    gnutls_certificate_allocate_credentials(&cred_);
    if (gnutls_certificate_set_x509_trust_file(cred_, ca.c_str(), GNUTLS_X509_FMT_PEM) <= 0) {
      throw std::runtime_error("bad CA file");
    }
    gnutls_init(&s_, GNUTLS_CLIENT | GNUTLS_NONBLOCK | init_flags);
    if (priority) {
      gnutls_priority_set_direct(s_, priority, nullptr);
    } else {
      gnutls_set_default_priority(s_);
    }
    gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, cred_);
    if (!sni.empty()) gnutls_server_name_set(s_, GNUTLS_NAME_DNS, sni.data(), sni.size());
    host_ = verify_host;
    gnutls_session_set_verify_cert(s_, host_.c_str(), 0);
    std::vector<gnutls_datum_t> protos;
    for (auto& a : alpn_) {
      protos.push_back({reinterpret_cast<unsigned char*>(a.data()), static_cast<unsigned>(a.size())});
    }
    if (!protos.empty())
      gnutls_alpn_set_protocols(s_, protos.data(), static_cast<unsigned>(protos.size()), 0);
    gnutls_transport_set_ptr(s_, this);
    gnutls_transport_set_push_function(s_, [](gnutls_transport_ptr_t p, const void* d, size_t n) -> ssize_t {
      auto* self = static_cast<MemoryTlsClient*>(p);
      auto* b = static_cast<const uint8_t*>(d);
      self->out.insert(self->out.end(), b, b + n);
      return static_cast<ssize_t>(n);
    });
    gnutls_transport_set_pull_function(s_, [](gnutls_transport_ptr_t p, void* d, size_t n) -> ssize_t {
      auto* self = static_cast<MemoryTlsClient*>(p);
      if (self->in.empty()) {
        gnutls_transport_set_errno(self->s_, EAGAIN);
        return -1;
      }
      n = std::min(n, self->in.size());
      std::memcpy(d, self->in.data(), n);
      self->in.erase(self->in.begin(), self->in.begin() + static_cast<ptrdiff_t>(n));
      return static_cast<ssize_t>(n);
    });
  }
  ~MemoryTlsClient() {
    gnutls_deinit(s_);
    gnutls_certificate_free_credentials(cred_);
  }

  // 0 = done, GNUTLS_E_AGAIN = needs more, other negative = failure.
  int handshake() {
    if (done_) return 0;
    int rv = gnutls_handshake(s_);
    if (rv == 0) done_ = true;
    return rv;
  }
  bool handshake_done() const { return done_; }
  ssize_t send(std::span<const uint8_t> d) { return gnutls_record_send(s_, d.data(), d.size()); }
  ssize_t send(const std::string& d) { return send({reinterpret_cast<const uint8_t*>(d.data()), d.size()}); }
  // Reads everything decryptable; sets `closed` on close_notify, `error` on failure. GnuTLS answers
  // GNUTLS_E_AGAIN after handling a post-handshake message (a TLS 1.3 session ticket) even when more
  // records are buffered, so it reads on while ciphertext is left.
  void recv_all(std::string& into) {
    char buf[16384];
    for (int i = 0; i < 100000; ++i) {
      ssize_t rv = gnutls_record_recv(s_, buf, sizeof(buf));
      if (rv > 0) {
        into.append(buf, static_cast<size_t>(rv));
        continue;
      }
      if (rv == 0) {
        closed = true;
      } else if (rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) {
        if (!in.empty() || gnutls_record_check_pending(s_) > 0) continue;
      } else {
        error = static_cast<int>(rv);
      }
      return;
    }
  }
  std::string alpn() const {
    gnutls_datum_t p{};
    if (gnutls_alpn_get_selected_protocol(s_, &p) != 0) return {};
    return std::string(reinterpret_cast<const char*>(p.data), p.size);
  }
  gnutls_protocol_t version() const { return gnutls_protocol_get_version(s_); }
  // Resumption: the session (with its ticket, once received) to hand to the next client.
  std::vector<uint8_t> session_data() const {
    gnutls_datum_t d{};
    if (gnutls_session_get_data2(s_, &d) != 0) return {};
    std::vector<uint8_t> out(d.data, d.data + d.size);
    gnutls_free(d.data);
    return out;
  }
  void resume_from(const std::vector<uint8_t>& data) {
    gnutls_session_set_data(s_, data.data(), data.size());
  }
  bool resumed() const { return gnutls_session_is_resumed(s_) != 0; }
  void bye() { gnutls_bye(s_, GNUTLS_SHUT_WR); }
  // SHA-256 of the server's leaf certificate DER, lower-case hex.
  std::string peer_sha256() const {
    unsigned n = 0;
    const gnutls_datum_t* certs = gnutls_certificate_get_peers(s_, &n);
    if (n == 0) return {};
    unsigned char digest[32];
    size_t len = sizeof(digest);
    gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], digest, &len);
    static const char* hex = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < len; ++i) {
      out += hex[digest[i] >> 4];
      out += hex[digest[i] & 15];
    }
    return out;
  }

  std::vector<uint8_t> out;  // ciphertext to the server
  std::vector<uint8_t> in;   // ciphertext from the server
  bool closed = false;
  int error = 0;

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t s_ = nullptr;
  std::vector<std::string> alpn_;
  std::string host_;
  bool done_ = false;
};

}  // namespace wtmesh::edge::test
