#include "quic/tls_credentials.h"

#include <array>
#include <stdexcept>
#include <string>

namespace wtmesh::quic {

TlsCredentials::TlsCredentials() {
  if (int rv = gnutls_certificate_allocate_credentials(&cred_); rv < 0) {
    throw std::runtime_error(std::string("gnutls_certificate_allocate_credentials: ") + gnutls_strerror(rv));
  }
}

TlsCredentials::~TlsCredentials() {
  if (cred_) gnutls_certificate_free_credentials(cred_);
}

std::string server_name_of(gnutls_session_t session) {
  std::array<char, 256> name{};
  size_t len = name.size();
  unsigned type = 0;
  if (gnutls_server_name_get(session, name.data(), &len, &type, 0) != 0 || type != GNUTLS_NAME_DNS) return {};
  return std::string(name.data(), len);
}

}  // namespace wtmesh::quic
