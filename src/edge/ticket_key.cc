#include "edge/ticket_key.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include <stdexcept>
#include <string>

#include "common/files.h"
#include "h3/settings.h"
#include "wt/h3_config.h"

namespace wtmesh::edge {

namespace {

constexpr size_t kSecretSize = 64;

std::string secret_of(const std::filesystem::path& state_dir) {
  const auto path = state_dir / "ticket-secret";
  files::ensure_private_dir(state_dir);
  files::DirLock lock(state_dir / ".ticket-secret.lock");
  if (auto s = files::read_small_file(path)) {
    if (s->size() != kSecretSize)
      throw std::runtime_error("session ticket secret " + path.string() + ": " + std::to_string(s->size()) +
                               " bytes, expected " + std::to_string(kSecretSize) +
                               " (delete it to make a new one)");
    files::ensure_private_mode(path);
    return *s;
  }
  std::string fresh(kSecretSize, '\0');
  if (gnutls_rnd(GNUTLS_RND_KEY, fresh.data(), fresh.size()) != 0)
    throw std::runtime_error("gnutls_rnd failed making " + path.string());
  files::write_file_atomic(path, fresh, 0600);
  return fresh;
}

// What a 0-RTT client relies on: the transport parameters it remembers and our SETTINGS.
std::string limits_text(const quic::TransportLimits& l) {
  std::string t = "wtmesh 0-RTT v1";
  for (uint64_t v : {l.max_streams_bidi, l.max_streams_uni, l.stream_window, l.connection_window,
                     l.max_datagram_frame_size, static_cast<uint64_t>(l.idle_timeout.count()),
                     static_cast<uint64_t>(l.max_udp_payload)}) {
    t += ' ';
    t += std::to_string(v);
  }
  const auto settings = h3::serialize_settings_frame(wt::webtransport_h3_config(h3::Role::kServer).local);
  t.append(settings.begin(), settings.end());
  return t;
}

}  // namespace

std::vector<uint8_t> edge_ticket_key(const std::filesystem::path& state_dir,
                                     const quic::TransportLimits& limits) {
  const std::string secret = secret_of(state_dir);
  const std::string text = limits_text(limits);
  std::vector<uint8_t> key(64);  // HMAC-SHA512: exactly GnuTLS' ticket master key size
  if (gnutls_hmac_fast(GNUTLS_MAC_SHA512, secret.data(), secret.size(), text.data(), text.size(),
                       key.data()) != 0)
    throw std::runtime_error("gnutls_hmac_fast failed deriving the session ticket key");
  return key;
}

}  // namespace wtmesh::edge
