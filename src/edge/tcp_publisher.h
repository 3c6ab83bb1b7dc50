// The seam between a tunnel session's REGISTER of type "tcp" (edge/agent_session.h) and whatever
// gives TCP tunnels their public ports (edge/tcp_tunnels.h; the tests' fake). Sans-I/O interface: the
// session asks for a port and hears at once whether it has one.
#pragma once

#include <cstdint>
#include <string>

namespace wtmesh::edge {

struct TcpPublishRequest {
  uint64_t session = 0;  // AgentSession::serial()
  uint32_t tunnel_id = 0;
  std::string hostname;       // NAME.DOMAIN, lower-case, already checked against the token
  uint32_t remote_port = 0;   // 0: any port of the range; else that one (tunnel::Register::kBadPort: bad)
  bool private_only = false;  // no public port: reachable by name only
};

struct TcpPublishResult {
  bool ok = false;
  std::string url;      // ok: "tcp://HOST:PORT", or "tcp://NAME.DOMAIN" for a private tunnel
  std::string code;     // !ok: a REFUSED code (tunnel::refusal)
  std::string message;  // !ok: a sentence
};

class TcpPublisher {
 public:
  virtual ~TcpPublisher() = default;
  virtual TcpPublishResult publish(const TcpPublishRequest& request) = 0;
  // Closes the tunnel's port and its connections. Unknown tunnels: no-op.
  virtual void unpublish(uint64_t session, uint32_t tunnel_id) = 0;
};

}  // namespace wtmesh::edge
