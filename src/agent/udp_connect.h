// The local UDP port of `wtmesh connect NAME --listen 127.0.0.1:PORT --udp` (docs/protocol.md §4.3
// flag `udp`): each client address that sends to the port is one flow, opened on the current session
// to the edge with a connect stream (EdgeSession::open_udp_connect) and carried in datagrams of the
// flow's odd id; the edge maps it onto a flow of the udp tunnel NAME, and the service's answers come
// back to the client's address from the port. Until the edge's reply (one round trip) a flow's packets
// wait: at most kMaxHeldPackets per flow and kMaxHeldBytes for the port. More than that, packets larger
// than the session's current max datagram size, a new client past the cap, and packets the QUIC send
// path or the socket has no room for are dropped and counted (tunnel::UdpDropCounters, logged when they
// change). A refusal is reported (at most once a second; the client's packets are then dropped for a
// second before asking again).
// Flows idle for idle_timeout end (FIN on their stream); the session's end ends every flow.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/edge_session.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::agent {

class UdpConnectPort final : public UdpConnectSink {
 public:
  // `refused(code, message)`: the edge refused a flow (code as tunnel::to_string(ConnectStatus)).
  UdpConnectPort(boost::asio::io_context& io, std::string name, tunnel::UdpFlowOptions options,
                 std::function<void(const std::string& code, const std::string& message)> refused);
  ~UdpConnectPort() override;
  UdpConnectPort(const UdpConnectPort&) = delete;
  UdpConnectPort& operator=(const UdpConnectPort&) = delete;

  // Binds the local port; false with `error` (a sentence) when it cannot.
  bool listen(const boost::asio::ip::udp::endpoint& at, std::string* error);
  boost::asio::ip::udp::endpoint local_endpoint() const;
  // The session flows open on from now on (nullptr: none; every flow ends).
  void set_session(EdgeSession* session);
  EdgeSession* session() const { return session_; }

  size_t flow_count() const { return flows_.size(); }
  static constexpr size_t kMaxHeldPackets = 8;         // per flow, until the edge's reply
  static constexpr size_t kMaxHeldBytes = 256 * 1024;  // all flows of the port together
  const tunnel::UdpDropCounters& drops() const { return drops_; }

  // UdpConnectSink
  void on_udp_reply(uint64_t flow_id, const tunnel::ConnectReply& reply) override;
  void on_udp_packet(uint64_t flow_id, std::span<const uint8_t> payload) override;
  void on_udp_end(uint64_t flow_id) override;

 private:
  struct Flow {
    boost::asio::ip::udp::endpoint client;
    bool open = false;                       // the edge answered `connected`
    std::vector<std::vector<uint8_t>> held;  // packets waiting for the reply
  };
  void receive();
  void on_client_packet(std::span<const uint8_t> payload, const boost::asio::ip::udp::endpoint& from);
  void send_to_edge(uint64_t flow_id, std::span<const uint8_t> payload);
  void forget(uint64_t flow_id);
  void end_all();
  void arm_sweep();
  void sweep();

  std::string name_;
  tunnel::UdpFlowOptions options_;
  std::function<void(const std::string&, const std::string&)> refused_;
  boost::asio::ip::udp::socket socket_;
  EdgeSession* session_ = nullptr;
  tunnel::UdpFlowTable table_;  // flow id ↔ client address, with cap and idle expiry
  std::map<uint64_t, Flow> flows_;
  std::map<std::string, SteadyTime, std::less<>> refused_until_;  // client key → when to ask again
  std::optional<SteadyTime> last_refusal_report_;
  tunnel::UdpDropCounters drops_;
  size_t held_bytes_ = 0;
  uint64_t logged_drops_ = 0;
  static constexpr size_t kMaxPacketsPerWake = 32;
  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(65535);
  boost::asio::steady_timer sweep_timer_;
  bool sweep_armed_ = false;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
