// Steering public TCP connections among the workers of an edge (issue 15 item 3; docs/architecture.md,
// "Workers"). The kernel spreads a port's connections over the workers' listeners by a hash of the
// client's address, so with N workers most connections land on a worker whose agents do not hold the
// name they ask for, and each of their requests crosses to the agent's worker (a WorkerDirectory hop).
// Steering hands the whole connection over instead, before TLS or any codec has run: when its first
// bytes name a tunnel held on another worker (edge/first_bytes.h: the ClientHello's SNI, a plain
// request head's Host), the listener gives up the socket's descriptor and posts it, with the bytes
// read so far, to that worker's listener on the same port, which serves it as if it had accepted it.
// A name held where the connection landed, a name without a live route, bytes that name nothing, a
// target worker that is gone or draining: served where it landed (or, for the last two, reset).
// The connection's place in the port's counts (PublicListenerShared) moves with it.
//
// Threads: attach and detach on the listener's thread; owner() and hand_over() on any worker's.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "quic/address_limits.h"

namespace wtmesh::edge {

class PublicListener;
class PublicListenerShared;
class RouteTable;

// A connection on its way to another worker's listener. It owns the descriptor until a listener
// takes it (take_fd): one dropped on the way (an io_context destroyed with the post) is closed.
struct SteeredConnection {
  SteeredConnection() = default;
  SteeredConnection(SteeredConnection&& o) noexcept;
  SteeredConnection& operator=(SteeredConnection&& o) noexcept;
  ~SteeredConnection();
  int take_fd() { return std::exchange(fd, -1); }

  int fd = -1;  // the socket's descriptor, released from the listener that accepted it
  boost::asio::ip::tcp protocol = boost::asio::ip::tcp::v4();
  std::vector<uint8_t> bytes;  // read already, nothing taken from them yet
  std::string limit_key;       // as counted in the port's PublicListenerShared
  std::optional<quic::AddressKey> address;
};

class PortSteering final : public std::enable_shared_from_this<PortSteering> {
 public:
  // `routes`: the table all workers share; `edge`: the edge's id (leases name "EDGE/wK"); `counts`:
  // the port's, given back for a connection no listener could take.
  PortSteering(RouteTable& routes, std::string edge, std::shared_ptr<PublicListenerShared> counts,
               size_t workers);
  PortSteering(const PortSteering&) = delete;
  PortSteering& operator=(const PortSteering&) = delete;

  void attach(unsigned worker, PublicListener& listener, boost::asio::io_context& io);
  void detach(unsigned worker, const PublicListener& listener);

  // The worker whose agent holds the live route for `host`, when it is not `self` (nullopt: serve it
  // where it is). Only a table that answers at once is asked (the shared in-process one does).
  std::optional<unsigned> owner(std::string_view host, unsigned self);
  // Posts `c` to worker `to`'s listener; closes it (and gives back its count) when there is none.
  void hand_over(unsigned to, SteeredConnection c);

 private:
  struct Slot {
    std::mutex m;
    PublicListener* listener = nullptr;
    boost::asio::io_context* io = nullptr;
  };
  void drop(SteeredConnection& c);

  RouteTable& routes_;
  std::string edge_;
  std::shared_ptr<PublicListenerShared> counts_;
  std::vector<std::shared_ptr<Slot>> slots_;
};

}  // namespace wtmesh::edge
