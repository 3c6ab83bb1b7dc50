// UDP tunnel flows as byte vectors (docs/protocol.md §2.1, §4.4): flow-id ranges, the flow datagram
// `flow_id:varint tunnel_id:varint payload`, the flow table's cap and idle expiry.
#include "tunnel/udp_flow.h"

#include <gtest/gtest.h>

#include <vector>

#include "tunnel/wire.h"

namespace wtmesh::tunnel {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace std::chrono_literals;

TEST(UdpFlowIds, EdgeEvenAgentOddFromTwoToTheThirty) {
  EXPECT_EQ(udp_flow_id(FlowOpener::kEdge, 0), uint64_t{1} << 30);
  EXPECT_EQ(udp_flow_id(FlowOpener::kAgent, 0), (uint64_t{1} << 30) + 1);
  EXPECT_EQ(udp_flow_id(FlowOpener::kEdge, 5), (uint64_t{1} << 30) + 10);
  EXPECT_EQ(udp_flow_opener(*udp_flow_id(FlowOpener::kEdge, 7)), FlowOpener::kEdge);
  EXPECT_EQ(udp_flow_opener(*udp_flow_id(FlowOpener::kAgent, 7)), FlowOpener::kAgent);
  EXPECT_FALSE(is_udp_flow(0)) << "flow 0 is telemetry";
  EXPECT_FALSE(is_udp_flow((uint64_t{1} << 30) - 1)) << "the last relay id";
  EXPECT_TRUE(is_udp_flow(uint64_t{1} << 30));
  EXPECT_TRUE(is_udp_flow(kMaxUdpFlowId));
  EXPECT_FALSE(is_udp_flow(kMaxUdpFlowId + 1));
  // The id space ends at 2^62 - 1 (odd: the agent's last).
  const uint64_t last_n = (kMaxUdpFlowId - kFirstUdpFlowId) / 2;
  EXPECT_EQ(udp_flow_id(FlowOpener::kAgent, last_n), kMaxUdpFlowId);
  EXPECT_EQ(udp_flow_id(FlowOpener::kEdge, last_n), kMaxUdpFlowId - 1);
  EXPECT_FALSE(udp_flow_id(FlowOpener::kEdge, last_n + 1));
  EXPECT_FALSE(udp_flow_id(FlowOpener::kAgent, last_n + 1));
}

TEST(UdpDatagram, ByteVector) {
  const Bytes payload = {'d', 'n', 's'};
  // flow 2^30 (8-byte varint 0xc0000000 40000000), tunnel 7, payload.
  const Bytes wire = encode_udp_datagram(uint64_t{1} << 30, 7, payload);
  EXPECT_EQ(wire, (Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0x07, 'd', 'n', 's'}));
  EXPECT_EQ(udp_datagram_overhead(uint64_t{1} << 30, 7), 9u);
  EXPECT_EQ(udp_datagram_overhead(uint64_t{1} << 30, 64), 10u);
  const auto d = decode_udp_datagram(wire);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->flow_id, uint64_t{1} << 30);
  EXPECT_EQ(d->tunnel_id, 7u);
  EXPECT_EQ(Bytes(d->payload.begin(), d->payload.end()), payload);
  // It is a §2.1 datagram: the generic decoder sees the same flow id.
  const auto generic = decode_datagram(wire);
  ASSERT_TRUE(generic);
  EXPECT_EQ(generic->flow_id, uint64_t{1} << 30);
}

TEST(UdpDatagram, EmptyPayloadIsAPacket) {
  const Bytes wire = encode_udp_datagram((uint64_t{1} << 30) + 3, 1, {});
  EXPECT_EQ(wire, (Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0x03, 0x01}));
  const auto d = decode_udp_datagram(wire);
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->payload.empty());
}

TEST(UdpDatagram, RejectsOtherFlowsAndTruncation) {
  EXPECT_FALSE(decode_udp_datagram(Bytes{})) << "empty";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0x00, 0x01, 'x'})) << "flow 0 is telemetry";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0x05, 0x01, 'x'})) << "flow 5 is a relayed session";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0xbf, 0xff, 0xff, 0xff, 0x01})) << "2^30 - 1: still a relay id";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0xc0, 0, 0, 0, 0x40, 0, 0})) << "flow id cut";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0})) << "no tunnel id";
  EXPECT_FALSE(decode_udp_datagram(Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0x40})) << "tunnel id cut";
  // A tunnel id over 2^32 - 1 (8-byte varint 2^32).
  EXPECT_FALSE(decode_udp_datagram(Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0xc0, 0, 0, 1, 0, 0, 0, 0}));
  EXPECT_TRUE(decode_udp_datagram(Bytes{0xc0, 0, 0, 0, 0x40, 0, 0, 0, 0xc0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}))
      << "2^32 - 1 is a tunnel id";
  EXPECT_THROW(encode_udp_datagram(5, 1, {}), std::invalid_argument);
}

TEST(UdpDropCounters, DescribeAndTotal) {
  UdpDropCounters c;
  c.too_big = 3;
  c.queue_full = 1;
  EXPECT_EQ(c.total(), 4u);
  EXPECT_EQ(c.describe(), "too_big 3, flow_cap 0, queue_full 1, unknown_flow 0");
}

TEST(UdpFlowTable, CapHoldsAndRoomComesBackOnExpiry) {
  UdpFlowTable t({2, 10s});
  const SteadyTime t0{};
  EXPECT_TRUE(t.add(100, "a", t0));
  EXPECT_TRUE(t.add(102, "b", t0 + 1s));
  EXPECT_TRUE(t.full());
  EXPECT_FALSE(t.add(104, "c", t0)) << "at the cap";
  EXPECT_EQ(t.find("a", t0 + 2s), 100u);
  EXPECT_FALSE(t.find("c", t0));
  EXPECT_EQ(*t.key_of(102), "b");
  EXPECT_TRUE(t.expire(t0 + 10s).empty());
  EXPECT_EQ(t.expire(t0 + 11s), std::vector<uint64_t>{102});
  EXPECT_FALSE(t.find("b", t0 + 11s));
  EXPECT_TRUE(t.add(104, "c", t0 + 11s)) << "room again";
  EXPECT_TRUE(t.touch(104, t0 + 20s));
  EXPECT_EQ(t.expire(t0 + 25s), std::vector<uint64_t>{100});
  EXPECT_EQ(t.size(), 1u);
  EXPECT_FALSE(t.touch(100, t0 + 25s));
  t.remove(104);
  EXPECT_EQ(t.size(), 0u);
}

TEST(UdpFlowTable, DuplicatesRefusedEmptyKeysAllowed) {
  UdpFlowTable t({8, 1s});
  const SteadyTime t0{};
  EXPECT_TRUE(t.add(1, "k", t0));
  EXPECT_FALSE(t.add(1, "other", t0)) << "same id";
  EXPECT_FALSE(t.add(3, "k", t0)) << "same key";
  EXPECT_EQ(t.size(), 1u);
  // The agent keys nothing: flows are found by id.
  EXPECT_TRUE(t.add(5, "", t0));
  EXPECT_TRUE(t.add(7, "", t0));
  EXPECT_TRUE(t.contains(7));
  EXPECT_FALSE(t.find("", t0));
  EXPECT_EQ(t.expire(t0 + 1s).size(), 3u);
}

}  // namespace
}  // namespace wtmesh::tunnel
