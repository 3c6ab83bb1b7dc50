// Several quic::Endpoints on one UDP address, one per worker thread, each with its own socket bound
// with SO_REUSEPORT: the kernel spreads flows over the sockets by a hash of the client's address and
// port, so a connection's packets keep reaching the worker whose socket took its first Initial, and
// that worker owns the connection for its whole life.
//
// When the client's address changes (migration, NAT rebinding), its packets hash to any socket of the
// group. Every connection id a worker issues names the worker in its first byte (quic::Dispatcher::
// set_worker), so the worker that receives such a packet hands it over: it copies the packets of one
// read batch for each owner into a ForwardBatch and posts it to the owner's io_context, which feeds
// them to the connection as if its own socket had read them (answers leave by the owner's socket,
// whose address is the same). A connection that stays on its new path keeps costing that hand-over
// per batch; steering in the kernel (SO_ATTACH_REUSEPORT_EBPF by the id's byte) would remove it and
// is not done.
//
// The queue toward each worker holds at most kMaxQueued packets (forged ids naming a worker cost a
// copy each, no more); beyond, packets are dropped and counted (EndpointStats::forwarded_dropped),
// as a full socket buffer would.
//
// Threads: forward() is called from any worker's thread; attach() before the workers run; an
// Endpoint detaches itself in its destructor, which runs on its own thread or after it stopped.
// Every io_context attached must outlive the group's last forward() toward it (stop all workers,
// then destroy).
#pragma once

#include <ngtcp2/ngtcp2.h>
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "quic/address_limits.h"

namespace wtmesh::quic {

class Endpoint;

// Packets read by one worker for another, with their senders.
struct ForwardBatch {
  struct Item {
    uint32_t offset = 0, length = 0;  // in bytes
    ngtcp2_sockaddr_union from{};
    socklen_t fromlen = 0;
  };
  std::vector<uint8_t> bytes;
  std::vector<Item> items;
  void add(std::span<const uint8_t> packet, const sockaddr* from, socklen_t fromlen);
  std::span<const uint8_t> packet(const Item& i) const { return {bytes.data() + i.offset, i.length}; }
  bool empty() const { return items.empty(); }
};

class EndpointGroup {
 public:
  static constexpr size_t kMaxQueued = 4096;  // forwarded packets waiting for one worker

  // `workers` endpoints will join (2..Dispatcher::kMaxWorkers); random shared secrets.
  explicit EndpointGroup(size_t workers);
  ~EndpointGroup();
  EndpointGroup(const EndpointGroup&) = delete;
  EndpointGroup& operator=(const EndpointGroup&) = delete;

  size_t size() const { return slots_.size(); }
  std::span<const uint8_t, 32> reset_secret() const { return reset_secret_; }
  std::span<const uint8_t, 32> token_secret() const { return token_secret_; }
  // Per-address connection and handshake limits, counted across the workers.
  const std::shared_ptr<AddressLimits>& address_limits() const { return address_limits_; }
  // Live connections of all its endpoints: what ServerOptions::max_connections and retry_above
  // count, so they are the edge's, not a worker's. (Endpoints hold it: it may outlive the group.)
  const std::shared_ptr<std::atomic<size_t>>& connections() const { return connections_; }

  // Hands `batch` to worker `to`'s endpoint on its thread; returns how many packets were queued
  // (fewer when the queue is full or the worker is gone).
  size_t forward(size_t to, ForwardBatch batch);

 private:
  friend class Endpoint;
  struct Slot {
    std::mutex m;
    Endpoint* endpoint = nullptr;  // null: not attached, or gone
    boost::asio::io_context* io = nullptr;
    std::atomic<size_t> queued{0};
  };
  // Endpoint::join_group / ~Endpoint.
  void attach(size_t index, Endpoint& ep, boost::asio::io_context& io);
  void detach(size_t index, const Endpoint& ep);

  std::vector<std::shared_ptr<Slot>> slots_;
  std::array<uint8_t, 32> reset_secret_{};
  std::array<uint8_t, 32> token_secret_{};
  std::shared_ptr<AddressLimits> address_limits_ = std::make_shared<AddressLimits>();
  std::shared_ptr<std::atomic<size_t>> connections_ = std::make_shared<std::atomic<size_t>>(0);
};

}  // namespace wtmesh::quic
