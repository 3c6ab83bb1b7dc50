// One certificate chain + key as GnuTLS server credentials, and the SNI hook that picks them per
// handshake. Shared by the QUIC server (quic/tls_context.h) and the edge's TLS-over-TCP listener
// (edge/tls_server_stream.h); the edge issues per-name credentials (edge/name_certs.h).
#pragma once

#include <gnutls/gnutls.h>

#include <functional>
#include <memory>
#include <string_view>

namespace wtmesh::quic {

class TlsCredentials {
 public:
  TlsCredentials();  // empty credentials; throws std::runtime_error on allocation failure
  ~TlsCredentials();
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;
  gnutls_certificate_credentials_t get() const { return cred_; }

 private:
  gnutls_certificate_credentials_t cred_ = nullptr;
};

// Picks other credentials for a ClientHello's SNI name (after GnuTLS parsed it), or nullptr to keep
// the default certificate. Runs inside the handshake: it must not throw into GnuTLS (callers catch),
// and a session keeps the shared_ptr it got until it is deinitialised.
using SniSelector = std::function<std::shared_ptr<const TlsCredentials>(std::string_view server_name)>;

// The SNI host name a ClientHello named ("" when none, or not a DNS name).
std::string server_name_of(gnutls_session_t session);

}  // namespace wtmesh::quic
