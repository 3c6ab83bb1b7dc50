// The agent's side of UDP tunnels (docs/protocol.md §4.4): the UDP flows of one tunnel session. The
// first datagram of an unknown edge-opened flow creates the flow: a UDP socket connected to the
// tunnel's local service (127.0.0.1:LOCALPORT), which sends the flow's payloads; what the service
// answers goes back as datagrams on that flow. Nothing is queued or retransmitted: an answer larger
// than the session's current max datagram size, or one the QUIC send path has no room for, a payload
// the local socket cannot take now, a new flow past the tunnel's cap, and a datagram for a tunnel id
// that is no udp tunnel here are dropped and counted per tunnel (tunnel::UdpDropCounters). Flows
// idle for idle_timeout are closed; the edge forgets them on its own clock.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tunnel/udp_flow.h"
#include "wt/session.h"

namespace wtmesh::agent {

struct UdpTarget {
  boost::asio::ip::udp::endpoint endpoint;  // the local service
};

class UdpFlows {
 public:
  // `target(tunnel_id)`: the udp tunnel's local service, or nullptr when the id is no udp tunnel.
  UdpFlows(boost::asio::io_context& io, wt::Session& session,
           std::function<const UdpTarget*(uint32_t)> target, tunnel::UdpFlowOptions options);
  ~UdpFlows();
  UdpFlows(const UdpFlows&) = delete;
  UdpFlows& operator=(const UdpFlows&) = delete;

  // A UDP-flow datagram from the edge.
  void on_datagram(const tunnel::UdpDatagram& datagram);
  // The session is gone: every flow closes.
  void close_all();

  size_t flow_count() const { return flows_.size(); }
  // Drops of one tunnel (zeroes for a tunnel that never had any), and of all of them.
  tunnel::UdpDropCounters drops(uint32_t tunnel_id) const;
  const tunnel::UdpDropCounters& total_drops() const { return total_; }

  struct Flow;

 private:
  struct TunnelFlows {
    explicit TunnelFlows(tunnel::UdpFlowOptions o) : table(o) {}
    tunnel::UdpFlowTable table;
    tunnel::UdpDropCounters drops;
    uint64_t logged_drops = 0;
  };
  TunnelFlows& tunnel_flows(uint32_t tunnel_id);
  std::shared_ptr<Flow> open_flow(uint64_t flow_id, uint32_t tunnel_id, const UdpTarget& target);
  void receive(const std::shared_ptr<Flow>& flow);
  void on_local_packet(Flow& flow, size_t n);
  void close_flow(uint64_t flow_id);
  void count(uint32_t tunnel_id, uint64_t tunnel::UdpDropCounters::*which);
  void arm_sweep();
  void sweep();

  boost::asio::io_context& io_;
  wt::Session* session_;
  std::function<const UdpTarget*(uint32_t)> target_;
  tunnel::UdpFlowOptions options_;
  std::map<uint64_t, std::shared_ptr<Flow>> flows_;  // flow id → its socket
  std::map<uint32_t, TunnelFlows> tunnels_;          // tunnel id → its flow table and drops
  // Packets read from one flow's socket per readiness wake-up, before the others get a turn.
  static constexpr size_t kMaxPacketsPerWake = 32;
  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(65535);  // every flow's reads land here
  tunnel::UdpDropCounters total_;
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  bool closed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
