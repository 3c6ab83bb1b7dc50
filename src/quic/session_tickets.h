// Session resumption and 0-RTT for QUIC (RFC 9001 §4.6, RFC 8446 §2.3 and §8).
//
// A client keeps a ResumptionTicket from one connection (the TLS session GnuTLS exports after the
// server's NewSessionTicket, and the server's transport parameters that bound 0-RTT) and passes it
// to the next connect(): the handshake resumes without certificates, and stream data the client
// writes before the handshake completes goes out as 0-RTT. A server that cannot or will not accept
// the early data (another ticket key, a replay, the store full) completes a full handshake; the
// client connection then closes (Connection::early_data_rejected()) and its owner dials again
// without the ticket.
//
// A server issues tickets once TlsServerContext::enable_resumption() is given a ticket key, and
// counts each ClientHello that carries early data in an AntiReplayStore: a ClientHello seen twice
// within GnuTLS' window gets its early data refused (the handshake goes on). The store is per
// process, so edges sharing a ticket key do not share it: what the edge accepts in 0-RTT is limited
// to what a replay cannot harm (docs/protocol.md §1.2).
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace wtmesh::quic {

struct ResumptionTicket {
  std::vector<uint8_t> tls_session;       // gnutls_session_get_data2 after a NewSessionTicket
  std::vector<uint8_t> transport_params;  // the server's, encoded by ngtcp2 for 0-RTT
  bool usable() const { return !tls_session.empty() && !transport_params.empty(); }
};

// GnuTLS' 0-RTT replay database: the key of every ClientHello that carried early data, until it
// expires. Bounded: when full of unexpired keys, add() answers kFull and the early data is refused
// (never a key forgotten early, which would let a replay through).
class AntiReplayStore {
 public:
  enum class Result { kAdded, kReplay, kFull };
  explicit AntiReplayStore(size_t capacity) : capacity_(capacity) {}
  Result add(std::string_view key, std::time_t expires, std::time_t now);
  size_t size() const { return keys_.size(); }
  size_t capacity() const { return capacity_; }
  uint64_t replays() const { return replays_; }
  uint64_t refused_full() const { return refused_full_; }

 private:
  void purge(std::time_t now);

  size_t capacity_;
  std::unordered_map<std::string, std::time_t> keys_;
  std::deque<std::pair<std::time_t, std::string>> order_;  // insertion order, for purging
  uint64_t replays_ = 0;
  uint64_t refused_full_ = 0;
};

}  // namespace wtmesh::quic
