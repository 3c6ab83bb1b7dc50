// Per-hostname leaf certificates for the public HTTPS listener and for HTTP/3 on QUIC, issued on demand
// by the edge's local CA (STATE_DIR/ca.pem + ca.key) for the SNI names of live tunnels.
//
// Why: the generated leaf carries "*.localhost", but OpenSSL (curl) and GnuTLS refuse wildcards
// directly under a single-label name, so `curl --cacert ca.pem https://NAME.localhost:PORT/` would
// fail verification with the shared leaf. A leaf naming exactly NAME.localhost verifies everywhere.
// Issued leaves reuse the edge leaf's key (key.pem), so issuing is one ECDSA signature, and live for
// kNameCertLifetime; they are cached (at most max_entries names) and reissued before they expire.
// Operator-supplied certificates (--cert/--key) never use this.
#pragma once

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "quic/tls_credentials.h"

namespace wtmesh::edge {

inline constexpr std::chrono::hours kNameCertLifetime{24 * 7};
inline constexpr std::chrono::hours kNameCertRenewBefore{24};

using quic::TlsCredentials;

class NameCertIssuer {
 public:
  // Loads ca.pem, ca.key and key.pem from `state_dir`. Throws std::runtime_error naming the file.
  explicit NameCertIssuer(const std::filesystem::path& state_dir, size_t max_entries = 1024);
  ~NameCertIssuer();
  NameCertIssuer(const NameCertIssuer&) = delete;
  NameCertIssuer& operator=(const NameCertIssuer&) = delete;

  // Credentials whose leaf names exactly `name` (lower-cased), issued now if not cached or close to
  // expiry. nullptr if `name` is not a DNS name or issuing failed (logged).
  std::shared_ptr<const TlsCredentials> credentials_for(
      std::string_view name, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

  size_t cached() const { return cache_.size(); }
  size_t issued() const { return issued_; }

 private:
  struct Entry {
    std::shared_ptr<const TlsCredentials> cred;
    std::chrono::system_clock::time_point not_after;
    uint64_t last_use = 0;
  };
  std::shared_ptr<const TlsCredentials> issue(const std::string& name,
                                              std::chrono::system_clock::time_point now,
                                              std::chrono::system_clock::time_point* not_after);

  gnutls_x509_crt_t ca_crt_ = nullptr;
  gnutls_x509_privkey_t ca_key_ = nullptr;
  gnutls_x509_privkey_t leaf_key_ = nullptr;
  std::chrono::system_clock::time_point ca_not_after_;
  size_t max_entries_;
  std::map<std::string, Entry, std::less<>> cache_;
  uint64_t use_counter_ = 0;
  size_t issued_ = 0;
};

}  // namespace wtmesh::edge
