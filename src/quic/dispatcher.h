// The socket-free half of a QUIC endpoint: what to do with each datagram that arrives.
//
// The Dispatcher owns the connection-id routing table (it is the CidRegistry every Connection
// reports its ids to), the stateless-reset secret, and the decision for packets no connection
// claims. classify() takes one packet's bytes and returns a Decision:
//
//   kRoute     the destination id belongs to `conn`: feed it the packet
//   kAccept    a valid client Initial while the endpoint accepts: create a server Connection from
//              `header` (the driver then calls accepted() and feeds it the packet)
//   kReply     answer with `reply()` (Version Negotiation for an unknown version, Stateless Reset for
//              a short-header packet of a connection we do not know), one datagram to the sender
//   kRefuse    a valid Initial the endpoint will not take (connection limit): counted and dropped
//              (an address over its own limits, quic/address_limits.h, gets kReply with a
//              CONNECTION_CLOSE CONNECTION_REFUSED instead, so a real client stops at once)
//   kForward   the destination id is not ours but names another worker of the group sharing this
//              address (its first byte, quic/endpoint_group.h): hand the packet to `worker`
//   kDrop      anything else (undecodable, not an Initial, client side, shutting down)
//
// Workers: endpoints on one address with SO_REUSEPORT (quic/endpoint_group.h) each have a Dispatcher
// told its index and the group's size (set_worker). Every connection id it issues (new_cid) then
// carries the index in its first byte; the rest stays random (17 bytes). A short-header or Handshake
// packet whose id no connection here holds but whose first byte names another worker is kForward:
// the kernel hashed the client's new address (migration, NAT rebinding) to this socket. Initials and
// 0-RTT carry the id the client chose and are never forwarded: a new connection lives where its
// Initial landed. The byte is not sealed: a client already picks the socket its packets land on
// through its own source port, so hiding the byte would protect nothing; a forged id costs one
// hand-over and a stateless reset at the worker it names, and the hand-over queue is bounded.
// The workers share the stateless-reset and Retry-token secrets (set_secrets), so any of them can
// verify a token another issued.
//
// The Asio driver (quic::Endpoint) does the I/O: it reads datagrams, sends replies, owns the
// Connections, their timers and parked output. Tests drive the Dispatcher with byte vectors and real
// Connections in memory (tests/unit/quic/dispatcher_test.cc, tests/support/quic_pair.h).
//
// Address validation (RFC 9000 §8.1.2): while `retry_above` or more connections are open (0: always),
// an Initial without a token is answered with a Retry (kReply) carrying a token that
// ngtcp2_crypto_generate_retry_token2 seals (AEAD) with a per-process random secret, bound to the
// client's address and its original destination connection id, valid kRetryTokenLifetime. The
// client's next Initial brings it back: verified here, it gives kAccept with retry_original_dcid (the
// connection then sends original_dcid and retry_scid, and ngtcp2 counts the address as validated); a
// Retry token that does not verify (forged, another address, expired) gets an Initial
// CONNECTION_CLOSE INVALID_TOKEN. Spoofed Initials then cost one stateless packet each and hold no
// connection slot. Only classify() with the sender's address does any of this.
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <sys/socket.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "quic/address_limits.h"
#include "quic/connection.h"

namespace wtmesh::quic {

struct DispatcherOptions {
  bool server = false;  // accept Initials and answer strays; a client only routes
  size_t max_connections = 4096;
  // Per client address (applied when classify() is given the sender's address).
  AddressLimitOptions address_limits;
  // Retry token-less Initials while this many connections (or more) are open; 0: always.
  size_t retry_above = std::numeric_limits<size_t>::max();
};

// How long a Retry token is accepted after it was issued.
inline constexpr Timestamp kRetryTokenLifetime = 10'000'000'000;  // 10 s

struct DispatcherStats {
  uint64_t version_negotiations = 0;
  uint64_t stateless_resets = 0;
  uint64_t refused = 0;                      // valid Initials refused because the endpoint was at its limit
  uint64_t refused_address_connections = 0;  // the sender's address holds its cap of connections
  uint64_t refused_handshake_rate = 0;       // the sender's address started too many handshakes
  uint64_t retries = 0;                      // Retry packets sent
  uint64_t invalid_tokens = 0;               // Retry tokens that did not verify (INVALID_TOKEN sent)
  uint64_t forwarded = 0;                    // packets for another worker's connection ids (kForward)
};

class Dispatcher final : public CidRegistry {
 public:
  struct Decision {
    enum class Kind { kRoute, kAccept, kReply, kRefuse, kForward, kDrop };
    Kind kind = Kind::kDrop;
    Connection* conn = nullptr;  // kRoute
    unsigned worker = 0;         // kForward: the worker whose id it is
    ngtcp2_pkt_hd header{};      // kAccept: the Initial's header, for Connection::accept
    // kAccept with a sender's address: its key; the driver calls opened(key) once the connection
    // exists and closed(key) when it is gone.
    std::optional<AddressKey> address;
    // kAccept of an Initial whose Retry token verified: the client's first destination id.
    std::optional<ngtcp2_cid> retry_original_dcid;
  };

  // A random stateless-reset secret.
  explicit Dispatcher(DispatcherOptions options);
  // A given secret (tests; several processes behind one address would share one).
  Dispatcher(DispatcherOptions options, std::span<const uint8_t, 32> reset_secret);

  void set_options(DispatcherOptions options) {
    options_ = options;
    address_limits_->set_options(options.address_limits);
  }
  const DispatcherOptions& options() const { return options_; }
  // This dispatcher is worker `index` of `count` sharing one address (count ≤ kMaxWorkers; 1: alone).
  // Before any connection exists.
  void set_worker(unsigned index, unsigned count);
  unsigned worker_index() const { return worker_index_; }
  unsigned worker_count() const { return worker_count_; }
  static constexpr unsigned kMaxWorkers = 256;  // one byte of the connection id
  // The stateless-reset and Retry-token secrets, shared by a group's workers. Before any connection.
  void set_secrets(std::span<const uint8_t, 32> reset_secret, std::span<const uint8_t, 32> token_secret);
  // The per-address limits a group's workers share (with this dispatcher's options). Before any
  // connection.
  void share_address_limits(std::shared_ptr<AddressLimits> limits) {
    limits->set_options(options_.address_limits);
    address_limits_ = std::move(limits);
  }
  // No new connections from now on (the endpoint is shutting down); existing ones still route.
  void stop_accepting() { accepting_ = false; }
  // A drain: new connections get CONNECTION_CLOSE CONNECTION_REFUSED ("the server is draining"), so a
  // client tries elsewhere at once; the open ones are routed as before.
  void refuse_new_connections() { refusing_ = true; }

  // `open_connections` is how many the driver holds now (the limit counts them all, also those not
  // yet routed). After kReply, reply() holds the datagram until the next classify().
  // With the sender's address `from` (and the time), per-address limits apply to new connections.
  Decision classify(std::span<const uint8_t> packet, size_t open_connections, const sockaddr* from = nullptr,
                    socklen_t fromlen = 0, Timestamp now = 0);
  std::span<const uint8_t> reply() const { return {reply_.data(), reply_len_}; }

  // Forgets every id `conn` registered (it is about to be destroyed).
  void forget(const Connection* conn);
  size_t route_count() const { return routes_.size(); }
  // A connection accepted with Decision::address `key` now exists / is gone.
  void opened(const AddressKey& key) { address_limits_->opened(key); }
  void closed(const AddressKey& key) { address_limits_->closed(key); }
  const AddressLimits& address_limits() const { return *address_limits_; }
  const DispatcherStats& stats() const { return stats_; }

  // CidRegistry
  void add_cid(const ngtcp2_cid& cid, Connection* conn) override;
  void remove_cid(const ngtcp2_cid& cid) override;
  void stateless_reset_token(uint8_t* token, const ngtcp2_cid& cid) override;
  void new_cid(uint8_t* data, size_t len) override;

 private:
  // Connection ids as routing keys, without a heap allocation per packet.
  struct CidKey {
    std::array<uint8_t, NGTCP2_MAX_CIDLEN> bytes{};
    uint8_t len = 0;
    CidKey() = default;
    CidKey(const uint8_t* data, size_t n);
    bool operator==(const CidKey& o) const { return len == o.len && bytes == o.bytes; }
  };
  struct CidKeyHash {
    size_t operator()(const CidKey& k) const {
      return std::hash<std::string_view>{}(
          std::string_view(reinterpret_cast<const char*>(k.bytes.data()), k.len));
    }
  };

  bool write_version_negotiation(const ngtcp2_version_cid& vc);
  bool write_stateless_reset(std::span<const uint8_t> packet, const ngtcp2_version_cid& vc);
  // A stateless Initial CONNECTION_CLOSE answering the client Initial `hd` (transport error `code`).
  bool write_initial_close(const ngtcp2_pkt_hd& hd, uint64_t code, std::string_view reason);
  bool write_retry(const ngtcp2_pkt_hd& hd, const sockaddr* from, socklen_t fromlen, Timestamp now);

  // The worker that owns `vc`'s destination id when it is another one's, and the packet may move.
  std::optional<unsigned> foreign_worker(std::span<const uint8_t> packet, const ngtcp2_version_cid& vc) const;

  DispatcherOptions options_;
  unsigned worker_index_ = 0;
  unsigned worker_count_ = 1;
  bool accepting_ = true;
  bool refusing_ = false;
  std::array<uint8_t, 32> reset_secret_{};
  std::array<uint8_t, 32> token_secret_{};  // Retry tokens' key material, random per process
  std::unordered_map<CidKey, Connection*, CidKeyHash> routes_;         // DCID → connection
  std::unordered_map<const Connection*, std::vector<CidKey>> ids_of_;  // connection → its DCIDs
  std::shared_ptr<AddressLimits> address_limits_ = std::make_shared<AddressLimits>();
  std::array<uint8_t, 1280> reply_{};  // a Retry or an Initial CONNECTION_CLOSE fits
  size_t reply_len_ = 0;
  DispatcherStats stats_;
};

}  // namespace wtmesh::quic
