// The seam between a tunnel session's REGISTER of type "udp" (edge/agent_session.h) and whatever gives
// UDP tunnels their public sockets (edge/udp_tunnels.h; the tests' fake), and the way datagrams cross
// it: the session hands over every UDP-flow datagram the agent sends (docs/protocol.md §4.4), and the
// publisher sends through the session's UdpFlowLink, found by serial (so it never holds a session).
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "edge/tcp_publisher.h"
#include "tunnel/udp_flow.h"

namespace wtmesh::edge {

// What a UDP tunnel sends its datagrams through: one agent's session (AgentSession implements it).
class UdpFlowLink {
 public:
  virtual ~UdpFlowLink() = default;
  // Largest datagram the session can send now (0: none).
  virtual size_t max_datagram_size() const = 0;
  // Sends one whole datagram (§2.1 framing included); false when there is no room now.
  virtual bool send_datagram(std::span<const uint8_t> datagram) = 0;
};

// Same fields as a TCP publish: session, tunnel id, hostname, remote_port, private.
using UdpPublishRequest = TcpPublishRequest;
using UdpPublishResult = TcpPublishResult;  // url "udp://HOST:PORT" or "udp://NAME.DOMAIN"

class UdpPublisher {
 public:
  virtual ~UdpPublisher() = default;
  virtual UdpPublishResult publish(const UdpPublishRequest& request) = 0;
  // Closes the tunnel's socket and forgets its flows. Unknown tunnels: no-op.
  virtual void unpublish(uint64_t session, uint32_t tunnel_id) = 0;
  // A UDP-flow datagram the agent of `session` sent (decoded; payload valid during the call).
  virtual void on_agent_datagram(uint64_t session, const tunnel::UdpDatagram& datagram) = 0;
};

}  // namespace wtmesh::edge
