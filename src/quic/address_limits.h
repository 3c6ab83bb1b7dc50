// Per client address limits on new QUIC connections (issue 14 items 4 and 6b), kept by the
// quic::Dispatcher: at most `max_connections_per_address` live connections per address, and a token
// bucket of handshakes per address (`handshake_burst` at once, `handshakes_per_second` back).
// Addresses are grouped as edge/http_codec.h's client_limit_key groups them: an IPv4 address
// (IPv4-mapped IPv6 included) is its own key, an IPv6 address shares its key with its /64.
//
// Bounded: live counts exist only for addresses with a live connection (so at most the endpoint's
// connection limit of them), and the bucket table holds at most `max_tracked` keys, the least
// recently seen evicted first in O(1) (an evicted key starts again with a full bucket). Sans-I/O: time
// comes in as an argument. Thread-safe: the workers of one edge share one (quic::EndpointGroup), so an
// address's caps are the edge's whichever worker's socket its connections reach.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "quic/connection.h"

namespace wtmesh::quic {

struct AddressLimitOptions {
  size_t max_connections_per_address = 64;  // live connections (handshaking ones too); 0: no cap
  double handshake_burst = 64;              // new connections an address may start at once
  double handshakes_per_second = 16;        // given back per second; 0 with burst 0: no rate limit
  size_t max_tracked = 4096;                // addresses with a bucket; least recently seen evicted
};

// An address key: a family tag and the IPv4 address or the IPv6 /64 prefix.
struct AddressKey {
  std::array<uint8_t, 9> bytes{};
  bool operator==(const AddressKey& o) const { return bytes == o.bytes; }
  std::string to_string() const;  // "192.0.2.1", "2001:db8:1:2::/64" (logs, tests)
};
struct AddressKeyHash {
  size_t operator()(const AddressKey& k) const;
};
// nullopt for a family other than IPv4/IPv6 (or a short length).
std::optional<AddressKey> address_key(const sockaddr* addr, socklen_t len);

class AddressLimits {
 public:
  enum class Verdict { kAdmit, kTooManyConnections, kTooManyHandshakes };
  explicit AddressLimits(AddressLimitOptions options = {}) : options_(options) {}
  void set_options(AddressLimitOptions options) {
    std::lock_guard lock(mutex_);
    options_ = options;
  }
  AddressLimitOptions options() const {
    std::lock_guard lock(mutex_);
    return options_;
  }

  // May `key` start one more connection now? kAdmit takes one handshake token.
  Verdict admit(const AddressKey& key, Timestamp now);
  // A connection of `key` was created / is gone (the driver pairs them).
  void opened(const AddressKey& key);
  void closed(const AddressKey& key);

  size_t connections(const AddressKey& key) const;
  size_t addresses_with_connections() const {
    std::lock_guard lock(mutex_);
    return live_.size();
  }
  size_t tracked() const {
    std::lock_guard lock(mutex_);
    return buckets_.size();
  }
  size_t evicted() const {
    std::lock_guard lock(mutex_);
    return evicted_;
  }

 private:
  struct Bucket {
    double tokens = 0;
    Timestamp at = 0;
    std::list<AddressKey>::iterator lru;
  };
  bool take_handshake(const AddressKey& key, Timestamp now);  // under mutex_
  size_t live_count(const AddressKey& key) const;             // under mutex_

  mutable std::mutex mutex_;
  AddressLimitOptions options_;
  std::unordered_map<AddressKey, size_t, AddressKeyHash> live_;  // only keys with a live connection
  std::unordered_map<AddressKey, Bucket, AddressKeyHash> buckets_;
  std::list<AddressKey> lru_;  // most recently seen first
  size_t evicted_ = 0;
};

}  // namespace wtmesh::quic
