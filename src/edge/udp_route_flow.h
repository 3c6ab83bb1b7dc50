// One flow of an edge UDP route (`wtmesh edge --udp-route NAME=HOST:PORT`, docs/protocol.md §4.3): a UDP
// socket of the edge's own, connected to HOST:PORT, for one client flow of UdpConnects (the address of
// one local client of an agent's `connect --udp`, or one browser session's datagrams at /connect/NAME).
//
// - Packets to the service are sent as they come, never queued: a full socket buffer drops them
//   (kNoRoom), one larger than a UDP datagram can be is kTooBig.
// - Answers are read when the socket is readable, into a buffer all flows share (a flow holds no
//   receive buffer of its own), at most kReadBurst per wake-up so one busy flow cannot starve others.
// - ICMP errors (port unreachable: the service is not up yet) are ignored; the flow stays, as a
//   client's UDP socket would.
// - The flow ends after idle_timeout with no packet either way: UdpFlowClient::on_udp_flow_end, in
//   which the client may destroy this object.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/udp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/time.h"
#include "edge/udp_tunnels.h"

namespace wtmesh::edge {

class UdpRouteFlow {
 public:
  static constexpr size_t kMaxPayload = 65507;  // the largest UDP payload over IPv4
  static constexpr int kReadBurst = 32;

  // nullptr with `error` set when no socket could be made or connected (e.g. out of descriptors).
  // `buffer` (at least kMaxPayload bytes) is shared with other flows and must outlive this one.
  static std::unique_ptr<UdpRouteFlow> open(boost::asio::io_context& io,
                                            const boost::asio::ip::udp::endpoint& target,
                                            std::chrono::milliseconds idle_timeout,
                                            std::vector<uint8_t>& buffer, UdpFlowClient* client,
                                            std::string* error);
  ~UdpRouteFlow();
  UdpRouteFlow(const UdpRouteFlow&) = delete;
  UdpRouteFlow& operator=(const UdpRouteFlow&) = delete;

  enum class Send { kSent, kTooBig, kNoRoom };
  Send send(std::span<const uint8_t> payload);

  uint64_t packets_in() const { return packets_in_; }    // from the service
  uint64_t packets_out() const { return packets_out_; }  // to the service

 private:
  UdpRouteFlow(boost::asio::io_context& io, std::chrono::milliseconds idle_timeout,
               std::vector<uint8_t>& buffer, UdpFlowClient* client);
  void wait_readable();
  void read_some();
  void arm_idle(std::chrono::steady_clock::duration after);
  void on_idle();

  boost::asio::ip::udp::socket socket_;
  boost::asio::steady_timer idle_timer_;
  std::chrono::milliseconds idle_timeout_;
  std::vector<uint8_t>& buffer_;
  UdpFlowClient* client_;
  SteadyTime last_packet_;
  uint64_t packets_in_ = 0;
  uint64_t packets_out_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::edge
