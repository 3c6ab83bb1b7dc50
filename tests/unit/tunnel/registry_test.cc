// The protocol's registries (stream kinds, REGISTER types) and the datagram framing.
#include "tunnel/registry.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "common/varint.h"
#include "tunnel/wire.h"

namespace wtmesh::tunnel {
namespace {

TEST(StreamKinds, RegistryAndDispatch) {
  ASSERT_TRUE(find_stream_kind(0x00));
  EXPECT_EQ(find_stream_kind(0x00)->name, "control");
  EXPECT_EQ(find_stream_kind(0x01)->opener, Peer::kEdge);
  ASSERT_TRUE(find_stream_kind(0x04));
  EXPECT_EQ(find_stream_kind(0x04)->opener, Peer::kEdge);
  ASSERT_TRUE(find_stream_kind(0x05));
  EXPECT_EQ(find_stream_kind(0x05)->opener, Peer::kAgent);
  EXPECT_EQ(to_string(StreamKind::kConnectStream), "connect-stream");
  EXPECT_FALSE(find_stream_kind(0x06));
  EXPECT_EQ(to_string(StreamKind::kWtSession), "wt-session");
  EXPECT_EQ(to_string(StreamKind::kWtStream), "wt-stream");
  EXPECT_EQ(to_string(StreamKind::kHttpRequest), "http-request");
  EXPECT_EQ(to_string(StreamKind::kTcpStream), "tcp-stream");
  EXPECT_EQ(accept_stream_kind(0x04, Peer::kAgent), StreamKind::kTcpStream);
  EXPECT_EQ(accept_stream_kind(0x04, Peer::kEdge), std::nullopt) << "tcp-streams are the edge's to open";
  // Each side accepts the kinds its peer opens, and nothing else.
  EXPECT_EQ(accept_stream_kind(0x00, Peer::kEdge), StreamKind::kControl);
  EXPECT_EQ(accept_stream_kind(0x01, Peer::kEdge), std::nullopt) << "request streams are the edge's to open";
  EXPECT_EQ(accept_stream_kind(0x01, Peer::kAgent), StreamKind::kHttpRequest);
  EXPECT_EQ(accept_stream_kind(0x00, Peer::kAgent), std::nullopt);
  EXPECT_EQ(accept_stream_kind(0x25, Peer::kAgent), std::nullopt);
  EXPECT_EQ(accept_stream_kind(kVarintMax, Peer::kEdge), std::nullopt);
  // Relayed WebTransport (§7): session streams are the edge's to open, relayed streams either side's.
  EXPECT_EQ(accept_stream_kind(0x02, Peer::kAgent), StreamKind::kWtSession);
  EXPECT_EQ(accept_stream_kind(0x02, Peer::kEdge), std::nullopt);
  EXPECT_EQ(accept_stream_kind(0x03, Peer::kAgent), StreamKind::kWtStream);
  EXPECT_EQ(accept_stream_kind(0x03, Peer::kEdge), StreamKind::kWtStream);
}

TEST(StreamKinds, ReaderTakesOnlyTheKindInAnyFragmentation) {
  const std::vector<uint8_t> wire = {0x80, 0x00, 0x00, 0x01, 'r', 'e', 's', 't'};  // kind 1, 4-byte varint
  StreamKindReader r;
  EXPECT_EQ(r.feed(std::span<const uint8_t>(wire).first(0)), 0u);
  EXPECT_EQ(r.feed(std::span<const uint8_t>(wire).first(2)), 2u);
  EXPECT_FALSE(r.kind());
  EXPECT_EQ(r.feed(std::span<const uint8_t>(wire).subspan(2)), 2u) << "stops at the end of the varint";
  EXPECT_EQ(r.kind(), 1u);
  EXPECT_EQ(r.feed(wire), 0u) << "nothing more once the kind is known";
  StreamKindReader eight;
  const std::vector<uint8_t> big = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00};
  EXPECT_EQ(eight.feed(big), 8u);
  EXPECT_EQ(eight.kind(), kVarintMax);
}

TEST(TunnelTypes, HttpTcpAndUdpAreServed) {
  ASSERT_TRUE(find_tunnel_type("http"));
  EXPECT_TRUE(find_tunnel_type("http")->served);
  EXPECT_EQ(find_tunnel_type("http")->type, TunnelType::kHttp);
  ASSERT_TRUE(find_tunnel_type("tcp"));
  EXPECT_TRUE(find_tunnel_type("tcp")->served);
  ASSERT_TRUE(find_tunnel_type("udp"));
  EXPECT_TRUE(find_tunnel_type("udp")->served);
  EXPECT_EQ(find_tunnel_type("udp")->type, TunnelType::kUdp);
  EXPECT_FALSE(find_tunnel_type("HTTP")) << "compared exactly, as v1 did";
  EXPECT_FALSE(find_tunnel_type(""));
  EXPECT_FALSE(find_tunnel_type("quic"));
}

TEST(Datagrams, ByteVectorsAndRoundTrip) {
  const std::vector<uint8_t> payload = {'h', 'i'};
  EXPECT_EQ(encode_datagram(0, payload), (std::vector<uint8_t>{0x00, 'h', 'i'}));
  EXPECT_EQ(encode_datagram(300, payload), (std::vector<uint8_t>{0x41, 0x2c, 'h', 'i'}));
  EXPECT_EQ(encode_datagram(7, {}), (std::vector<uint8_t>{0x07}));
  const auto wire = encode_datagram(kVarintMax, payload);
  EXPECT_EQ(wire.size(), 10u);
  const auto d = decode_datagram(wire);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->flow_id, kVarintMax);
  EXPECT_EQ(std::vector<uint8_t>(d->payload.begin(), d->payload.end()), payload);
  const auto empty_payload = decode_datagram(std::vector<uint8_t>{0x40, 0x05});  // non-minimal flow 5
  ASSERT_TRUE(empty_payload);
  EXPECT_EQ(empty_payload->flow_id, 5u);
  EXPECT_TRUE(empty_payload->payload.empty());
}

TEST(Datagrams, TruncatedFlowIdIsDroppedAndTooLargeIsRefused) {
  EXPECT_FALSE(decode_datagram({}));
  EXPECT_FALSE(decode_datagram(std::vector<uint8_t>{0x80, 0x00, 0x01}));  // 4-byte varint, 3 bytes
  EXPECT_THROW(encode_datagram(kVarintMax + 1, {}), std::invalid_argument);
}

}  // namespace
}  // namespace wtmesh::tunnel
