// Fuzzes the UDP flow datagram decoder and the flow table (docs/protocol.md §4.4): a datagram it
// accepts is a UDP flow's and encodes back to the same bytes; the table, driven by the input (add,
// touch, find, expire at input-chosen times), never holds more flows than its cap, and every flow it
// expires was idle for the timeout.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "tunnel/udp_flow.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace wtmesh::tunnel;
  const std::span<const uint8_t> in(data, size);
  if (const auto d = decode_udp_datagram(in)) {
    if (!is_udp_flow(d->flow_id)) __builtin_trap();
    if (d->payload.size() + udp_datagram_overhead(d->flow_id, d->tunnel_id) > size) __builtin_trap();
    // Minimal varints re-encode to the same bytes; others at least to the same meaning.
    const std::vector<uint8_t> again = encode_udp_datagram(d->flow_id, d->tunnel_id, d->payload);
    const auto back = decode_udp_datagram(again);
    if (!back || back->flow_id != d->flow_id || back->tunnel_id != d->tunnel_id ||
        !std::equal(back->payload.begin(), back->payload.end(), d->payload.begin(), d->payload.end()))
      __builtin_trap();
  }
  if (size < 2) return 0;
  UdpFlowTable table({static_cast<size_t>(1 + data[0] % 8), std::chrono::milliseconds(1 + data[1] % 50)});
  wtmesh::SteadyTime now{};
  std::map<uint64_t, wtmesh::SteadyTime> last;  // what the table should hold: each flow's last packet
  for (size_t i = 2; i + 1 < size; i += 2) {
    const uint8_t op = data[i] % 5;
    const uint64_t flow = kFirstUdpFlowId + data[i + 1] % 16;
    const std::string key(1, static_cast<char>('a' + data[i + 1] % 16));
    now += std::chrono::milliseconds(data[i] / 5);
    switch (op) {
      case 0:
        if (table.add(flow, key, now)) last[flow] = now;
        break;
      case 1:
        if (table.touch(flow, now) != last.contains(flow)) __builtin_trap();
        if (last.contains(flow)) last[flow] = now;
        break;
      case 2:
        if (const auto f = table.find(key, now)) {
          if (!table.key_of(*f) || *table.key_of(*f) != key || !last.contains(*f)) __builtin_trap();
          last[*f] = now;
        }
        break;
      case 3: {
        const auto gone = table.expire(now);
        for (const uint64_t g : gone) {
          if (table.contains(g) || !last.contains(g)) __builtin_trap();
          if (now - last[g] < table.options().idle_timeout) __builtin_trap();  // expired too early
          last.erase(g);
        }
        for (const auto& [f, t] : last)  // and every flow idle that long went
          if (now - t >= table.options().idle_timeout) __builtin_trap();
        break;
      }
      default:
        table.remove(flow);
        last.erase(flow);
        break;
    }
    if (table.size() > table.options().max_flows) __builtin_trap();
  }
  return 0;
}
