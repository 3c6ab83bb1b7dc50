// Per-hostname leaf certificates for the public HTTPS listener and for HTTP/3 on QUIC, issued on demand
// by the edge's local CA (STATE_DIR/ca.pem + ca.key) for the SNI names of live tunnels.
//
// Why: the generated leaf carries "*.localhost", but OpenSSL (curl) and GnuTLS refuse wildcards
// directly under a single-label name, so `curl --cacert ca.pem https://NAME.localhost:PORT/` would
// fail verification with the shared leaf. A leaf naming exactly NAME.localhost verifies everywhere.
// Issued leaves reuse the edge leaf's key (key.pem), so issuing is one ECDSA signature, and live for
// kNameCertLifetime; they are cached (at most max_entries names, least recently used evicted in O(1))
// and reissued before they expire. Any name under the domain gets one (a 404 page is reachable too),
// so a client sending random SNI names would buy one signature per handshake: issuing is rate-limited
// (NameCertRate, a token bucket); past it the handshake gets the shared leaf, and names already cached,
// which is every name in steady use, are not affected.
// Operator-supplied certificates (--cert/--key) never use this. Thread-safe: the workers of a
// multi-worker edge share one (SharedNameCertIssuer), so a name has one leaf on every worker.
#pragma once

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "quic/tls_credentials.h"

namespace wtmesh::edge {

inline constexpr std::chrono::hours kNameCertLifetime{24 * 7};
inline constexpr std::chrono::hours kNameCertRenewBefore{24};

using quic::TlsCredentials;

// How fast a NameCertIssuer signs new leaves (a token bucket).
struct NameCertRate {
  double per_second = 20;  // new certificates per second, sustained
  double burst = 64;       // at once (an edge that starts with many tunnels)
};

class NameCertIssuer {
 public:
  // Loads ca.pem, ca.key and key.pem from `state_dir`. Throws std::runtime_error naming the file.
  explicit NameCertIssuer(const std::filesystem::path& state_dir, size_t max_entries = 1024,
                          NameCertRate rate = {});
  ~NameCertIssuer();
  NameCertIssuer(const NameCertIssuer&) = delete;
  NameCertIssuer& operator=(const NameCertIssuer&) = delete;

  // Credentials whose leaf names exactly `name` (lower-cased), issued now if not cached or close to
  // expiry. nullptr if `name` is not a DNS name, issuing failed (logged) or is over the rate (counted
  // in throttled(); a cached certificate close to expiry is still returned then).
  std::shared_ptr<const TlsCredentials> credentials_for(
      std::string_view name, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

  size_t cached() const {
    std::lock_guard lock(mutex_);
    return cache_.size();
  }
  size_t issued() const {
    std::lock_guard lock(mutex_);
    return issued_;
  }
  size_t throttled() const {
    std::lock_guard lock(mutex_);
    return throttled_;
  }

 private:
  struct Entry {
    std::shared_ptr<const TlsCredentials> cred;
    std::chrono::system_clock::time_point not_after;
    std::list<std::string>::iterator use;  // its place in lru_
  };
  bool take_issue_token(std::chrono::system_clock::time_point now);
  std::shared_ptr<const TlsCredentials> issue(const std::string& name,
                                              std::chrono::system_clock::time_point now,
                                              std::chrono::system_clock::time_point* not_after);

  mutable std::mutex mutex_;  // credentials_for() runs on every worker's thread (one signature under it)
  gnutls_x509_crt_t ca_crt_ = nullptr;
  gnutls_x509_privkey_t ca_key_ = nullptr;
  gnutls_x509_privkey_t leaf_key_ = nullptr;
  std::chrono::system_clock::time_point ca_not_after_;
  size_t max_entries_;
  std::map<std::string, Entry, std::less<>> cache_;
  std::list<std::string> lru_;  // cached names, most recently used first
  NameCertRate rate_;
  double tokens_;
  std::chrono::system_clock::time_point refilled_{};
  size_t issued_ = 0;
  size_t throttled_ = 0;
};

// The NameCertIssuer every worker of a multi-worker edge uses (edge/edge_workers.h), so a name has one
// leaf whichever worker's socket a client reaches: a browser that pins the leaf's hash
// (serverCertificateHashes) learned it from one connection and checks it on the next. A renewed edge
// leaf (a new key) needs a new issuer: the first worker to ask after the renewal makes it.
class SharedNameCertIssuer {
 public:
  // The issuer for the edge leaf whose SHA-256 is `leaf_sha256` (its key in `state_dir`).
  std::shared_ptr<NameCertIssuer> issuer_for(const std::filesystem::path& state_dir,
                                             const std::string& leaf_sha256);

 private:
  std::mutex mutex_;
  std::string leaf_;
  std::shared_ptr<NameCertIssuer> issuer_;
};

}  // namespace wtmesh::edge
