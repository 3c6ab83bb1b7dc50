// The edge's UDP tunnels (docs/protocol.md §3.2, §4.4): the public ports of REGISTERs of type "udp",
// taken from a range (--udp-ports, 21000-21999 by default), one UDP socket per tunnel. Each client
// address is a flow: its packets go to the owning agent's session as datagrams on an edge-picked
// flow id (even, from 2^30), and the agent's datagrams on that flow go back to that address from the
// tunnel's socket. Nothing is queued or retransmitted: a packet that does not fit the session's
// current max datagram size, finds no room in the QUIC send path (or the socket's), belongs to a
// new client past the flow cap, or names a flow that is gone is dropped and counted
// (tunnel::UdpDropCounters, per tunnel; logged when they change and when the tunnel ends). Flows
// idle for idle_timeout are forgotten. Private tunnels get no socket.
//
// A client need not be a socket address: open_client_flow() gives a UdpFlowClient (a `wtmesh connect
// --udp` flow, a browser's datagrams: edge/udp_connects.h) a flow of its own on the tunnel. It is one
// more flow of the tunnel (an even flow id, the same cap, the same idle expiry, the same counters);
// its packets go in with send_client_packet() and the agent's answers come back to the client.
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
#include <string_view>
#include <tuple>
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
  // The pool of port_min..port_max the workers of one edge share (null: this one's own).
  std::shared_ptr<PortPool> ports;
  tunnel::UdpFlowOptions flows;  // per tunnel: max_flows (--udp-max-flows), idle_timeout
};

class UdpFlowClient;

// One client flow: the tunnel (its session, its REGISTER id) and the flow's even id there.
struct UdpClientFlow {
  uint64_t session = 0;
  uint32_t tunnel_id = 0;
  uint64_t flow_id = 0;
};

// Flows of udp tunnels for clients that are not socket addresses, as UdpConnects (edge/udp_connects.h)
// opens them: UdpTunnels for the tunnels of this thread's sessions, and the worker's directory
// (edge/worker_directory.h) for those held on another worker of the edge.
class UdpClientFlows {
 public:
  virtual ~UdpClientFlows() = default;
  enum class ClientOpen {
    kOpened,
    kNoTunnel,  // (session, tunnel_id) is not a udp tunnel here (unregistered, session gone)
    kFlowCap,   // the tunnel has as many flows as it may (counted as flow_cap)
    kLater,     // `*flow` is set; the answer comes as client->on_udp_flow_opened (never inside this call)
  };
  // Opens a flow of tunnel (session, tunnel_id) for `client` (not owned; it must outlive the flow or
  // close it first); `*flow` is set when kOpened or kLater.
  virtual ClientOpen open_client_flow(uint64_t session, uint32_t tunnel_id, UdpFlowClient* client,
                                      UdpClientFlow* flow) = 0;
  enum class ClientSend {
    kSent,
    kTooBig,  // larger than the session's current max datagram size (counted as too_big)
    kNoRoom,  // the QUIC send path has no room now, or the agent's session is gone (queue_full)
    kGone,    // the flow is not open (expired, closed, its tunnel gone): nothing counted
  };
  // Sends one packet of the client to the tunnel's agent (nothing queued, nothing fragmented).
  virtual ClientSend send_client_packet(const UdpClientFlow& flow, std::span<const uint8_t> payload) = 0;
  // Ends a client flow now (or the open still under way); its client hears nothing more (no
  // on_udp_flow_end). Unknown flows: no-op.
  virtual void close_client_flow(const UdpClientFlow& flow) = 0;
  // The largest payload a packet of `flow` may have now (0: the flow or its session is gone).
  virtual size_t client_payload_limit(const UdpClientFlow& flow) const = 0;
};

// A client of a UDP tunnel that is not a socket address (see above).
class UdpFlowClient {
 public:
  virtual ~UdpFlowClient() = default;
  // A packet the tunnel's service sent back on the client's flow (payload valid during the call).
  virtual void on_udp_packet(std::span<const uint8_t> payload) = 0;
  // The flow ended: idle for the tunnel's idle timeout, or the tunnel ended (UNREGISTER, the end of
  // its agent's session). No calls after this one; the client may be destroyed in it.
  virtual void on_udp_flow_end(std::string_view why) = 0;
  // The answer to an open_client_flow() that said kLater (kOpened, kNoTunnel or kFlowCap). After any
  // answer but kOpened the flow is gone and nothing more is heard.
  virtual void on_udp_flow_opened(UdpClientFlows::ClientOpen result) = 0;
};

class UdpTunnels final : public UdpPublisher, public UdpClientFlows {
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

  // --- clients that are not socket addresses (UdpClientFlows) ---
  ClientOpen open_client_flow(uint64_t session, uint32_t tunnel_id, UdpFlowClient* client,
                              UdpClientFlow* flow) override;
  ClientSend send_client_packet(const UdpClientFlow& flow, std::span<const uint8_t> payload) override;
  void close_client_flow(const UdpClientFlow& flow) override;
  size_t client_payload_limit(const UdpClientFlow& flow) const override;
  size_t client_flow_count() const;

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
  void tell_ended(const std::string& why);

  boost::asio::io_context& io_;
  std::function<UdpFlowLink*(uint64_t)> link_;
  UdpTunnelOptions options_;
  std::shared_ptr<PortPool> ports_;
  std::map<std::pair<uint64_t, uint32_t>, std::shared_ptr<Tunnel>> tunnels_;  // (session, tunnel id)
  // Client flows that ended (expired, their tunnel gone) whose clients are still to be told.
  std::map<std::tuple<uint64_t, uint32_t, uint64_t>, UdpFlowClient*> ending_;
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
