#include "quic/dispatcher.h"

#include <gnutls/crypto.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

namespace wtmesh::quic {

Dispatcher::CidKey::CidKey(const uint8_t* data, size_t n)
    : len(static_cast<uint8_t>(std::min(n, bytes.size()))) {
  std::memcpy(bytes.data(), data, len);
}

Dispatcher::Dispatcher(DispatcherOptions options)
    : options_(options), address_limits_(std::make_shared<AddressLimits>(options.address_limits)) {
  gnutls_rnd(GNUTLS_RND_RANDOM, reset_secret_.data(), reset_secret_.size());
  gnutls_rnd(GNUTLS_RND_RANDOM, token_secret_.data(), token_secret_.size());
}

Dispatcher::Dispatcher(DispatcherOptions options, std::span<const uint8_t, 32> reset_secret)
    : options_(options), address_limits_(std::make_shared<AddressLimits>(options.address_limits)) {
  std::copy(reset_secret.begin(), reset_secret.end(), reset_secret_.begin());
  gnutls_rnd(GNUTLS_RND_RANDOM, token_secret_.data(), token_secret_.size());
}

void Dispatcher::set_worker(unsigned index, unsigned count) {
  if (count == 0 || count > kMaxWorkers || index >= count)
    throw std::invalid_argument("quic: worker " + std::to_string(index) + " of " + std::to_string(count));
  worker_index_ = index;
  worker_count_ = count;
}

void Dispatcher::set_secrets(std::span<const uint8_t, 32> reset_secret,
                             std::span<const uint8_t, 32> token_secret) {
  std::copy(reset_secret.begin(), reset_secret.end(), reset_secret_.begin());
  std::copy(token_secret.begin(), token_secret.end(), token_secret_.begin());
}

void Dispatcher::new_cid(uint8_t* data, size_t len) {
  CidRegistry::new_cid(data, len);
  if (worker_count_ > 1 && len > 0) data[0] = static_cast<uint8_t>(worker_index_);
}

std::optional<unsigned> Dispatcher::foreign_worker(std::span<const uint8_t> packet,
                                                   const ngtcp2_version_cid& vc) const {
  if (worker_count_ <= 1 || vc.dcidlen != kCidLength) return std::nullopt;
  const unsigned owner = vc.dcid[0];
  if (owner >= worker_count_ || owner == worker_index_) return std::nullopt;
  if (packet[0] & 0x80) {
    // Long header: only Handshake packets carry an id we issued (Initial and 0-RTT carry the
    // client's choice). The type's bits differ between QUIC v1 and v2 (RFC 9369 §3.2).
    const unsigned type = (packet[0] & 0x30) >> 4;
    const unsigned handshake = vc.version == NGTCP2_PROTO_VER_V2 ? 3 : 2;
    if (type != handshake) return std::nullopt;
  }
  return owner;
}

void Dispatcher::add_cid(const ngtcp2_cid& cid, Connection* conn) {
  const CidKey key(cid.data, cid.datalen);
  auto [it, inserted] = routes_.try_emplace(key, conn);
  if (!inserted) {
    if (it->second == conn) return;
    // Our ids are random 18 bytes: a collision is practically impossible, but never leave a stale
    // back-reference if one happens.
    auto& old = ids_of_[it->second];
    old.erase(std::remove(old.begin(), old.end(), key), old.end());
    it->second = conn;
  }
  ids_of_[conn].push_back(key);
}

void Dispatcher::remove_cid(const ngtcp2_cid& cid) {
  const CidKey key(cid.data, cid.datalen);
  auto it = routes_.find(key);
  if (it == routes_.end()) return;
  // Retired ids leave the connection's list too, so a long-lived connection that migrates often
  // does not grow it.
  if (auto ids = ids_of_.find(it->second); ids != ids_of_.end()) {
    auto& v = ids->second;
    v.erase(std::remove(v.begin(), v.end(), key), v.end());
  }
  routes_.erase(it);
}

void Dispatcher::forget(const Connection* conn) {
  auto ids = ids_of_.find(conn);
  if (ids == ids_of_.end()) return;
  for (const CidKey& key : ids->second) {
    auto r = routes_.find(key);
    if (r != routes_.end() && r->second == conn) routes_.erase(r);
  }
  ids_of_.erase(ids);
}

void Dispatcher::stateless_reset_token(uint8_t* token, const ngtcp2_cid& cid) {
  ngtcp2_crypto_generate_stateless_reset_token(token, reset_secret_.data(), reset_secret_.size(), &cid);
}

Dispatcher::Decision Dispatcher::classify(std::span<const uint8_t> packet, size_t open_connections,
                                          const sockaddr* from, socklen_t fromlen, Timestamp now) {
  reply_len_ = 0;
  Decision d;
  if (packet.empty()) return d;  // ngtcp2 asserts on an empty packet
  ngtcp2_version_cid vc{};
  const int rv = ngtcp2_pkt_decode_version_cid(&vc, packet.data(), packet.size(), kCidLength);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (options_.server && write_version_negotiation(vc)) d.kind = Decision::Kind::kReply;
    return d;
  }
  if (rv != 0) return d;

  if (auto route = routes_.find(CidKey(vc.dcid, vc.dcidlen)); route != routes_.end()) {
    d.kind = Decision::Kind::kRoute;
    d.conn = route->second;
    return d;
  }
  if (auto owner = foreign_worker(packet, vc)) {
    ++stats_.forwarded;
    d.kind = Decision::Kind::kForward;
    d.worker = *owner;
    return d;
  }
  if (!options_.server || !accepting_) return d;
  if ((packet[0] & 0x80) == 0) {
    // A short-header packet for a connection we do not have (we restarted, or it is gone): tell
    // the peer so it stops at once instead of timing out.
    if (write_stateless_reset(packet, vc)) d.kind = Decision::Kind::kReply;
    return d;
  }
  if (ngtcp2_accept(&d.header, packet.data(), packet.size()) != 0) return d;  // not a valid Initial
  if (refusing_) {
    ++stats_.refused;
    if (write_initial_close(d.header, NGTCP2_CONNECTION_REFUSED, "the server is draining"))
      d.kind = Decision::Kind::kReply;
    return d;
  }
  if (open_connections >= options_.max_connections) {
    ++stats_.refused;
    d.kind = Decision::Kind::kRefuse;
    return d;
  }
  const auto key = address_key(from, fromlen);
  if (key && d.header.tokenlen > 0 && d.header.token[0] == NGTCP2_CRYPTO_TOKEN_MAGIC_RETRY2) {
    ngtcp2_cid original{};
    if (ngtcp2_crypto_verify_retry_token2(&original, d.header.token, d.header.tokenlen, token_secret_.data(),
                                          token_secret_.size(), d.header.version, from, fromlen,
                                          &d.header.dcid, kRetryTokenLifetime, now) != 0) {
      ++stats_.invalid_tokens;
      if (write_initial_close(d.header, NGTCP2_INVALID_TOKEN, "invalid retry token"))
        d.kind = Decision::Kind::kReply;
      return d;
    }
    d.retry_original_dcid = original;
  } else if (key && open_connections >= options_.retry_above) {
    if (write_retry(d.header, from, fromlen, now)) d.kind = Decision::Kind::kReply;
    return d;
  }
  if (key) {
    switch (address_limits_->admit(*key, now)) {
      case AddressLimits::Verdict::kAdmit:
        d.address = key;
        break;
      case AddressLimits::Verdict::kTooManyConnections:
        ++stats_.refused_address_connections;
        if (write_initial_close(d.header, NGTCP2_CONNECTION_REFUSED,
                                "too many connections from this address"))
          d.kind = Decision::Kind::kReply;
        return d;
      case AddressLimits::Verdict::kTooManyHandshakes:
        ++stats_.refused_handshake_rate;
        if (write_initial_close(d.header, NGTCP2_CONNECTION_REFUSED, "too many handshakes from this address"))
          d.kind = Decision::Kind::kReply;
        return d;
    }
  }
  d.kind = Decision::Kind::kAccept;
  return d;
}

bool Dispatcher::write_retry(const ngtcp2_pkt_hd& hd, const sockaddr* from, socklen_t fromlen,
                             Timestamp now) {
  ngtcp2_cid retry_scid;
  retry_scid.datalen = kCidLength;
  gnutls_rnd(GNUTLS_RND_NONCE, retry_scid.data, retry_scid.datalen);
  std::array<uint8_t, NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN2> token{};
  const ngtcp2_ssize tokenlen =
      ngtcp2_crypto_generate_retry_token2(token.data(), token_secret_.data(), token_secret_.size(),
                                          hd.version, from, fromlen, &retry_scid, &hd.dcid, now);
  if (tokenlen < 0) return false;
  const ngtcp2_ssize n =
      ngtcp2_crypto_write_retry(reply_.data(), reply_.size(), hd.version, &hd.scid, &retry_scid, &hd.dcid,
                                token.data(), static_cast<size_t>(tokenlen));
  if (n <= 0) return false;
  reply_len_ = static_cast<size_t>(n);
  ++stats_.retries;
  return true;
}

bool Dispatcher::write_initial_close(const ngtcp2_pkt_hd& hd, uint64_t code, std::string_view reason) {
  // Our SCID is the client's DCID (it also derives the Initial keys), our DCID the client's SCID.
  const ngtcp2_ssize n =
      ngtcp2_crypto_write_connection_close(reply_.data(), reply_.size(), hd.version, &hd.scid, &hd.dcid, code,
                                           reinterpret_cast<const uint8_t*>(reason.data()), reason.size());
  if (n <= 0) return false;
  reply_len_ = static_cast<size_t>(n);
  return true;
}

bool Dispatcher::write_version_negotiation(const ngtcp2_version_cid& vc) {
  uint8_t unused = 0;
  gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
  const uint32_t versions[] = {NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_V2};
  // Swap the ids: our SCID is the client's DCID and vice versa (RFC 9000 §17.2.1).
  const ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(reply_.data(), reply_.size(), unused, vc.scid,
                                                              vc.scidlen, vc.dcid, vc.dcidlen, versions, 2);
  if (n <= 0) return false;
  reply_len_ = static_cast<size_t>(n);
  ++stats_.version_negotiations;
  return true;
}

bool Dispatcher::write_stateless_reset(std::span<const uint8_t> packet, const ngtcp2_version_cid& vc) {
  // A reset must be smaller than the packet that triggered it, so two endpoints can never loop
  // (RFC 9000 §10.3.3).
  constexpr size_t kMinReset = 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN;
  if (packet.size() <= kMinReset || vc.dcidlen == 0) return false;
  const size_t total = std::min<size_t>(packet.size() - 1, 43);
  const size_t randlen = total - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  std::array<uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> token{};
  stateless_reset_token(token.data(), cid);
  std::array<uint8_t, 64> rand{};
  gnutls_rnd(GNUTLS_RND_NONCE, rand.data(), randlen);
  const ngtcp2_ssize n =
      ngtcp2_pkt_write_stateless_reset(reply_.data(), reply_.size(), token.data(), rand.data(), randlen);
  if (n <= 0) return false;
  reply_len_ = static_cast<size_t>(n);
  ++stats_.stateless_resets;
  return true;
}

}  // namespace wtmesh::quic
