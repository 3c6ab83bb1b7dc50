// UDP tunnel flows (docs/protocol.md §2.1, §4.4), sans-I/O: the flow-id ranges, the datagram of a
// UDP flow (`flow_id:varint tunnel_id:varint payload`), the drop counters both sides keep, and the
// flow table with its cap and idle expiry (time comes in as a parameter).
//
// Flow ids of a tunnel session: 0 is telemetry, 1..2^30-1 relayed WebTransport sessions (§7), and
// from 2^30 on UDP flows, picked by the side that opens the flow: even ids by the edge (a public
// client address of a `udp` tunnel), odd ids by the agent (reserved for `wtmesh connect --udp`).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/time.h"

namespace wtmesh::tunnel {

inline constexpr uint64_t kFirstUdpFlowId = uint64_t{1} << 30;
inline constexpr uint64_t kMaxUdpFlowId = (uint64_t{1} << 62) - 1;

enum class FlowOpener { kEdge, kAgent };

inline bool is_udp_flow(uint64_t flow_id) { return flow_id >= kFirstUdpFlowId && flow_id <= kMaxUdpFlowId; }
// Who picked a UDP flow id: even = the edge, odd = the agent.
inline FlowOpener udp_flow_opener(uint64_t flow_id) {
  return flow_id % 2 == 0 ? FlowOpener::kEdge : FlowOpener::kAgent;
}
// The n-th (0, 1, ...) UDP flow id of `opener`; nullopt once the id space is used up (after 2^61).
std::optional<uint64_t> udp_flow_id(FlowOpener opener, uint64_t n);

struct UdpDatagram {
  uint64_t flow_id = 0;
  uint32_t tunnel_id = 0;
  std::span<const uint8_t> payload;  // points into the decoded bytes; may be empty (a UDP packet may be)
};

// Bytes a UDP flow datagram adds in front of its payload.
size_t udp_datagram_overhead(uint64_t flow_id, uint32_t tunnel_id);
// Throws std::invalid_argument for a flow id that is not a UDP flow.
std::vector<uint8_t> encode_udp_datagram(uint64_t flow_id, uint32_t tunnel_id,
                                         std::span<const uint8_t> payload);
// nullopt when the datagram is no UDP flow's (flow id below 2^30), or its flow id or tunnel id is
// truncated, or the tunnel id is over 2^32 - 1: the receiver drops it (§2.1).
std::optional<UdpDatagram> decode_udp_datagram(std::span<const uint8_t> datagram);

// Packets dropped by one side of a UDP tunnel, by reason. Plain counters (exposed later as metrics).
struct UdpDropCounters {
  uint64_t too_big = 0;       // larger than the session's current max datagram size (never fragmented)
  uint64_t flow_cap = 0;      // a new client past the tunnel's flow cap
  uint64_t queue_full = 0;    // the QUIC send path or the local socket had no room
  uint64_t unknown_flow = 0;  // a datagram for a flow (or tunnel) this side does not know
  uint64_t total() const { return too_big + flow_cap + queue_full + unknown_flow; }
  // "too_big 3, flow_cap 0, queue_full 1, unknown_flow 0"
  std::string describe() const;
};

struct UdpFlowOptions {
  size_t max_flows = 1024;                         // flows at once (new keys beyond: add() refuses)
  std::chrono::milliseconds idle_timeout{60'000};  // a flow with no packet either way for this long ends
};

// The live flows of one UDP tunnel: flow id ↔ an opaque key (the edge: the client's address bytes;
// the agent: empty, it finds flows by id), each with the time of its last packet.
class UdpFlowTable {
 public:
  explicit UdpFlowTable(UdpFlowOptions options = {}) : options_(options) {}

  const UdpFlowOptions& options() const { return options_; }
  size_t size() const { return flows_.size(); }
  bool full() const { return flows_.size() >= options_.max_flows; }
  bool contains(uint64_t flow_id) const { return flows_.count(flow_id) != 0; }

  // The flow of `key` (and marks it active at `now`); nullopt when there is none.
  std::optional<uint64_t> find(std::string_view key, SteadyTime now);
  // Marks `flow_id` active at `now`; false when it is not in the table.
  bool touch(uint64_t flow_id, SteadyTime now);
  // Adds a flow; false when the table is full or the id or a non-empty key is already there.
  bool add(uint64_t flow_id, std::string key, SteadyTime now);
  // The key of `flow_id`, or nullptr.
  const std::string* key_of(uint64_t flow_id) const;
  void remove(uint64_t flow_id);
  // Removes and returns the flows idle for idle_timeout or longer at `now`.
  std::vector<uint64_t> expire(SteadyTime now);

 private:
  struct Flow {
    std::string key;
    SteadyTime last;
  };
  UdpFlowOptions options_;
  std::map<uint64_t, Flow> flows_;
  std::map<std::string, uint64_t, std::less<>> by_key_;  // non-empty keys only
};

}  // namespace wtmesh::tunnel
