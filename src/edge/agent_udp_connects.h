// The UDP connects of one agent session (docs/protocol.md §4.3 with flag `udp`, §4.4 agent-opened
// flows): each connect stream with the flag asks for one flow to a name's `udp` tunnel (through
// edge/udp_connects.h) for the flow id in its head. The stream is held by the session like a request
// stream (it counts toward the session's connect cap) and carries only the reply: `connected`, or a
// refusal and FIN. From `connected` on, the agent's datagrams of that odd flow id go to the service
// and the service's answers come back on it (`flow_id 0 payload`); the flow ends with a FIN either way
// (the edge sends it when the serving tunnel's flow expired or the tunnel ended), or a reset.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "edge/tunnel_directory.h"
#include "edge/udp_connects.h"
#include "tunnel/udp_flow.h"
#include "wt/session.h"

namespace wtmesh::edge {

class AgentSession;

class AgentUdpConnects {
 public:
  AgentUdpConnects(AgentSession& session, UdpConnects& connects);
  ~AgentUdpConnects();
  AgentUdpConnects(const AgentUdpConnects&) = delete;
  AgentUdpConnects& operator=(const AgentUdpConnects&) = delete;

  // The udp connect stream `id` asks for `name` on `flow_id`: returns the stream's events (the session
  // holds it as a request stream from now on), or nullptr when the flow id is already in use.
  RequestStreamEvents* open(wt::StreamId id, uint64_t flow_id, const std::string& name);
  // A datagram of an agent-opened flow (odd id). One of no flow open here is dropped and counted.
  void on_datagram(const tunnel::UdpDatagram& datagram);
  size_t count() const { return flows_.size(); }

  struct Stream;

 private:
  void forget(uint64_t flow_id);

  AgentSession& session_;
  UdpConnects& connects_;
  std::weak_ptr<const int> connects_alive_;
  std::map<uint64_t, std::unique_ptr<Stream>> flows_;  // by the agent's flow id
};

}  // namespace wtmesh::edge
