#include "quic/address_limits.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <string_view>

namespace wtmesh::quic {

namespace {
constexpr uint8_t kV4 = 4, kV6 = 6;
}

std::optional<AddressKey> address_key(const sockaddr* addr, socklen_t len) {
  if (addr == nullptr) return std::nullopt;
  AddressKey k;
  if (addr->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(addr);
    k.bytes[0] = kV4;
    std::memcpy(&k.bytes[1], &in->sin_addr, 4);
    return k;
  }
  if (addr->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(addr);
    const uint8_t* a = in6->sin6_addr.s6_addr;
    static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::memcmp(a, kMapped, 12) == 0) {  // an IPv4 client on a dual-stack socket
      k.bytes[0] = kV4;
      std::memcpy(&k.bytes[1], a + 12, 4);
      return k;
    }
    k.bytes[0] = kV6;
    std::memcpy(&k.bytes[1], a, 8);  // the /64
    return k;
  }
  return std::nullopt;
}

std::string AddressKey::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  if (bytes[0] == kV4) {
    inet_ntop(AF_INET, &bytes[1], buf, sizeof(buf));
    return buf;
  }
  uint8_t a[16] = {};
  std::memcpy(a, &bytes[1], 8);
  inet_ntop(AF_INET6, a, buf, sizeof(buf));
  return std::string(buf) + "/64";
}

size_t AddressKeyHash::operator()(const AddressKey& k) const {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size()));
}

AddressLimits::Verdict AddressLimits::admit(const AddressKey& key, Timestamp now) {
  std::lock_guard lock(mutex_);
  if (options_.max_connections_per_address > 0 && live_count(key) >= options_.max_connections_per_address) {
    return Verdict::kTooManyConnections;
  }
  if (!take_handshake(key, now)) return Verdict::kTooManyHandshakes;
  return Verdict::kAdmit;
}

bool AddressLimits::take_handshake(const AddressKey& key, Timestamp now) {
  if (options_.handshake_burst <= 0 && options_.handshakes_per_second <= 0) return true;  // no limit
  auto it = buckets_.find(key);
  if (it == buckets_.end()) {
    if (options_.max_tracked == 0) return true;
    if (buckets_.size() >= options_.max_tracked) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
      ++evicted_;
    }
    lru_.push_front(key);
    it = buckets_.emplace(key, Bucket{options_.handshake_burst, now, lru_.begin()}).first;
  } else {
    Bucket& b = it->second;
    lru_.splice(lru_.begin(), lru_, b.lru);
    if (now > b.at) {
      const double seconds = static_cast<double>(now - b.at) / 1e9;
      b.tokens = std::min(options_.handshake_burst, b.tokens + seconds * options_.handshakes_per_second);
      b.at = now;
    }
  }
  Bucket& b = it->second;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

void AddressLimits::opened(const AddressKey& key) {
  std::lock_guard lock(mutex_);
  ++live_[key];
}

void AddressLimits::closed(const AddressKey& key) {
  std::lock_guard lock(mutex_);
  auto it = live_.find(key);
  if (it == live_.end()) return;
  if (--it->second == 0) live_.erase(it);
}

size_t AddressLimits::connections(const AddressKey& key) const {
  std::lock_guard lock(mutex_);
  return live_count(key);
}

size_t AddressLimits::live_count(const AddressKey& key) const {
  auto it = live_.find(key);
  return it == live_.end() ? 0 : it->second;
}

}  // namespace wtmesh::quic
