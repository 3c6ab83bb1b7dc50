// The edge's UDP tunnels (docs/protocol.md §3.2, §4.4): the public ports of REGISTERs of type "udp",
// taken from a range (--udp-ports, 21000-21999 by default), one UDP socket per tunnel. Each client
// address is a flow: its packets go to the owning agent's session as datagrams on an edge-picked
// flow id (even, from 2^30), and the agent's datagrams on that flow go back to that address from the
// tunnel's socket. Nothing is queued or retransmitted: a packet that does not fit the session's
// current max datagram size, finds no room in the QUIC send path (or the socket's), belongs to a
// new client past the flow cap, or names a flow that is gone is dropped and counted
// (tunnel::UdpDropCounters, per tunnel; logged when they change and when the tunnel ends). Flows
// idle for idle_timeout are forgotten. Private tunnels get no socket.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "edge/port_pool.h"
#include "edge/udp_publisher.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::edge {

struct UdpTunnelOptions {
  boost::asio::ip::address listen_address = boost::asio::ip::make_address("127.0.0.1");
  std::string public_host;  // HOST in udp://HOST:PORT; empty = listen_address
  uint16_t port_min = 21000;
  uint16_t port_max = 21999;
  tunnel::UdpFlowOptions flows;  // per tunnel: max_flows (--udp-max-flows), idle_timeout
};

class UdpTunnels final : public UdpPublisher {
 public:
  // `link(serial)`: the live session with that serial, or nullptr.
  UdpTunnels(boost::asio::io_context& io, std::function<UdpFlowLink*(uint64_t)> link,
             UdpTunnelOptions options);
  ~UdpTunnels() override;
  UdpTunnels(const UdpTunnels&) = delete;
  UdpTunnels& operator=(const UdpTunnels&) = delete;

  UdpPublishResult publish(const UdpPublishRequest& request) override;
  void unpublish(uint64_t session, uint32_t tunnel_id) override;
  void on_agent_datagram(uint64_t session, const tunnel::UdpDatagram& datagram) override;

  size_t tunnel_count() const { return tunnels_.size(); }
  size_t flow_count() const;
  // The drop counters of one tunnel (nullptr: no such tunnel), and of every tunnel so far (including
  // ended ones, and datagrams for tunnels this edge does not have: unknown_flow).
  const tunnel::UdpDropCounters* drops(uint64_t session, uint32_t tunnel_id) const;
  const tunnel::UdpDropCounters& total_drops() const { return total_; }
  const UdpTunnelOptions& options() const { return options_; }

  struct Tunnel;

 private:
  void receive(const std::shared_ptr<Tunnel>& t);
  void on_client_packet(Tunnel& t, std::span<const uint8_t> payload,
                        const boost::asio::ip::udp::endpoint& from);
  bool bind(Tunnel& t, uint16_t port, std::string* error);
  void arm_sweep();
  void sweep();
  void count(Tunnel& t, uint64_t tunnel::UdpDropCounters::*which);

  boost::asio::io_context& io_;
  std::function<UdpFlowLink*(uint64_t)> link_;
  UdpTunnelOptions options_;
  PortPool ports_;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<Tunnel>> tunnels_;  // (session, tunnel id)
  uint64_t flows_opened_ = 0;  // n of the next edge flow id (tunnel::udp_flow_id)
  tunnel::UdpDropCounters total_;
  // Packets read from one tunnel's socket per readiness wake-up, before the others get a turn.
  static constexpr size_t kMaxPacketsPerWake = 32;
  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(65535);  // every tunnel's reads land here
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
