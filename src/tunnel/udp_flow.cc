#include "tunnel/udp_flow.h"

#include <stdexcept>

#include "common/varint.h"

namespace wtmesh::tunnel {

std::optional<uint64_t> udp_flow_id(FlowOpener opener, uint64_t n) {
  const uint64_t parity = opener == FlowOpener::kEdge ? 0 : 1;
  if (n > (kMaxUdpFlowId - kFirstUdpFlowId - parity) / 2) return std::nullopt;
  return kFirstUdpFlowId + 2 * n + parity;
}

size_t udp_datagram_overhead(uint64_t flow_id, uint32_t tunnel_id) {
  return varint_size(flow_id) + varint_size(tunnel_id);
}

std::vector<uint8_t> encode_udp_datagram(uint64_t flow_id, uint32_t tunnel_id,
                                         std::span<const uint8_t> payload) {
  if (!is_udp_flow(flow_id)) throw std::invalid_argument("not a UDP flow id");
  std::vector<uint8_t> out;
  out.reserve(udp_datagram_overhead(flow_id, tunnel_id) + payload.size());
  append_varint(out, flow_id);
  append_varint(out, tunnel_id);
  append_bytes(out, payload);
  return out;
}

std::optional<UdpDatagram> decode_udp_datagram(std::span<const uint8_t> datagram) {
  const auto flow = read_varint(datagram);
  if (!flow || !is_udp_flow(flow->value)) return std::nullopt;
  const auto rest = datagram.subspan(flow->length);
  const auto tunnel = read_varint(rest);
  if (!tunnel || tunnel->value > UINT32_MAX) return std::nullopt;
  return UdpDatagram{flow->value, static_cast<uint32_t>(tunnel->value), rest.subspan(tunnel->length)};
}

std::string UdpDropCounters::describe() const {
  return "too_big " + std::to_string(too_big) + ", flow_cap " + std::to_string(flow_cap) + ", queue_full " +
         std::to_string(queue_full) + ", unknown_flow " + std::to_string(unknown_flow);
}

std::optional<uint64_t> UdpFlowTable::find(std::string_view key, SteadyTime now) {
  auto it = by_key_.find(key);
  if (it == by_key_.end()) return std::nullopt;
  flows_[it->second].last = now;
  return it->second;
}

bool UdpFlowTable::touch(uint64_t flow_id, SteadyTime now) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return false;
  it->second.last = now;
  return true;
}

bool UdpFlowTable::add(uint64_t flow_id, std::string key, SteadyTime now) {
  if (full() || flows_.count(flow_id) != 0) return false;
  if (!key.empty() && !by_key_.emplace(key, flow_id).second) return false;
  flows_.emplace(flow_id, Flow{std::move(key), now});
  return true;
}

const std::string* UdpFlowTable::key_of(uint64_t flow_id) const {
  auto it = flows_.find(flow_id);
  return it == flows_.end() ? nullptr : &it->second.key;
}

void UdpFlowTable::remove(uint64_t flow_id) {
  auto it = flows_.find(flow_id);
  if (it == flows_.end()) return;
  if (!it->second.key.empty()) by_key_.erase(it->second.key);
  flows_.erase(it);
}

std::vector<uint64_t> UdpFlowTable::expire(SteadyTime now) {
  std::vector<uint64_t> gone;
  for (const auto& [id, flow] : flows_) {
    if (now - flow.last >= options_.idle_timeout) gone.push_back(id);
  }
  for (const uint64_t id : gone) remove(id);
  return gone;
}

}  // namespace wtmesh::tunnel
