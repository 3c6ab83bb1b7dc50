// connect-streams (kind 0x05) and connect replies as byte vectors (docs/protocol.md §4.3), their
// readers in every fragmentation and at their limits, and the token's `connect` claim.
#include "tunnel/connect_stream.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tunnel/registry.h"
#include "tunnel/token.h"
#include "tunnel_test_util.h"

namespace wtmesh::tunnel {
namespace {

using Bytes = std::vector<uint8_t>;
using namespace test;

Bytes bytes_of(std::string_view s) { return Bytes(s.begin(), s.end()); }

TEST(ConnectStream, HeadByteVector) {
  const Bytes wire = encode_connect_stream_head({"db"});
  // kind 0x05, head_length 4, flags 0, name "db"
  EXPECT_EQ(wire, (Bytes{0x05, 0x04, 0x00, 0x02, 'd', 'b'}));
  ConnectHead back;
  EXPECT_EQ(decode_connect_head(std::span<const uint8_t>(wire).subspan(2), back), WireError::kNone);
  EXPECT_EQ(back.name, "db");
  EXPECT_EQ(accept_stream_kind(0x05, Peer::kEdge), StreamKind::kConnectStream);
  EXPECT_EQ(accept_stream_kind(0x05, Peer::kAgent), std::nullopt) << "connect-streams are the agent's to open";
}

TEST(ConnectStream, UdpHeadByteVectorAndFlowIdRules) {
  const uint64_t flow = (uint64_t{1} << 30) + 1;  // the agent's first UDP flow id
  const Bytes wire = encode_connect_stream_head({"dns", flow});
  // kind 0x05, head_length 13, flags 1 (udp), name "dns", flow id 2^30+1 as an 8-byte varint
  EXPECT_EQ(wire,
            (Bytes{0x05, 0x0d, 0x01, 0x03, 'd', 'n', 's', 0xc0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x01}));
  ConnectHead back;
  ASSERT_EQ(decode_connect_head(std::span<const uint8_t>(wire).subspan(2), back), WireError::kNone);
  EXPECT_EQ(back.name, "dns");
  EXPECT_EQ(back.udp_flow, flow);
  // The flow id must be the agent's (odd) and a UDP flow's (from 2^30).
  const Bytes even{0x01, 0x01, 'a', 0xc0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x00};
  EXPECT_EQ(decode_connect_head(even, back), WireError::kMalformed) << "an even (edge) flow id";
  const Bytes low{0x01, 0x01, 'a', 0x05};
  EXPECT_EQ(decode_connect_head(low, back), WireError::kMalformed) << "a flow id below 2^30";
  const Bytes trailing{0x01, 0x01, 'a', 0xc0, 0x00, 0x00, 0x00, 0x40, 0x00, 0x00, 0x01, 0x00};
  EXPECT_EQ(decode_connect_head(trailing, back), WireError::kMalformed) << "a byte after the flow id";
  const Bytes truncated{0x01, 0x01, 'a', 0xc0, 0x00, 0x00};
  EXPECT_EQ(decode_connect_head(truncated, back), WireError::kMalformed) << "a truncated flow id";
  EXPECT_THROW(encode_connect_stream_head({"dns", uint64_t{1} << 30}), std::invalid_argument);
  EXPECT_THROW(encode_connect_stream_head({"dns", uint64_t{7}}), std::invalid_argument);
  // A TCP connect decodes without a flow.
  ASSERT_EQ(decode_connect_head(Bytes{0x00, 0x01, 'a'}, back), WireError::kNone);
  EXPECT_FALSE(back.udp_flow.has_value());
}

TEST(ConnectStream, ReplyByteVectors) {
  EXPECT_EQ(encode_connect_reply(ConnectStatus::kConnected, ""), (Bytes{0x00, 0x00}));
  Bytes refused{0x01, 0x12};
  const Bytes msg = bytes_of("not in token scope");
  refused.insert(refused.end(), msg.begin(), msg.end());
  EXPECT_EQ(encode_connect_reply(ConnectStatus::kNotInScope, "not in token scope"), refused);
  EXPECT_EQ(to_string(ConnectStatus::kOffline), "offline");
  EXPECT_EQ(to_string(static_cast<ConnectStatus>(77)), "refused");
  // A message is cut at the limit when encoded.
  const Bytes longer = encode_connect_reply(ConnectStatus::kUnknown, std::string(kMaxConnectMessage + 10, 'x'));
  EXPECT_EQ(longer.size(), 1 + 2 + kMaxConnectMessage);
}

TEST(ConnectStream, HeadReaderInAnyFragmentation) {
  const Bytes wire = encode_connect_stream_head({"svc.localhost"});
  Bytes with_payload(wire.begin() + 1, wire.end());  // after the kind
  with_payload.push_back('X');
  for (size_t step = 1; step <= with_payload.size(); ++step) {
    ConnectHeadReader r;
    ConnectHead h;
    size_t off = 0, used = 0;
    WireError e = WireError::kNeedMore;
    while (e == WireError::kNeedMore && off < with_payload.size()) {
      const auto chunk = std::span<const uint8_t>(with_payload).subspan(off, std::min(step, with_payload.size() - off));
      e = r.feed(chunk, used, h);
      off += used;
    }
    ASSERT_EQ(e, WireError::kNone) << "step " << step;
    EXPECT_EQ(h.name, "svc.localhost");
    EXPECT_EQ(off, with_payload.size() - 1) << "the payload byte is not the head's";
  }
}

TEST(ConnectStream, HeadLimitsAndMalformed) {
  auto feed = [](Bytes b) {
    ConnectHeadReader r;
    ConnectHead h;
    size_t used = 0;
    return r.feed(b, used, h);
  };
  EXPECT_EQ(feed({0x00}), WireError::kMalformed) << "head_length 0";
  EXPECT_EQ(feed({0x41, 0x2d}), WireError::kTooLarge) << "head_length 301";
  EXPECT_EQ(feed({0x03, 0x02, 0x01, 'a'}), WireError::kUnknownFlags) << "flag bit 1 is unknown";
  EXPECT_EQ(feed({0x03, 0x01, 0x01, 'a'}), WireError::kMalformed) << "flag bit 0 (udp) without a flow id";
  EXPECT_EQ(feed({0x02, 0x00, 0x00}), WireError::kMalformed) << "empty name";
  EXPECT_EQ(feed({0x04, 0x00, 0x01, 'a', 'b'}), WireError::kMalformed) << "a byte after the name";
  EXPECT_EQ(feed({0x04, 0x00, 0x03, 'a', 'b'}), WireError::kMalformed) << "the name runs past the head";
  EXPECT_EQ(feed({0x03, 0x00, 0x01}), WireError::kNeedMore) << "the head is not complete yet";
  // head_length 256 (0x4100) = flags + the 2-byte length 253 (0x40fd) + 253 bytes
  Bytes at_cap{0x41, 0x00, 0x00, 0x40, 0xfd};
  at_cap.insert(at_cap.end(), kMaxConnectName, 'a');
  EXPECT_EQ(feed(at_cap), WireError::kNone) << "a 253-byte name";
  Bytes over{0x41, 0x01, 0x00, 0x40, 0xfe};  // 254-byte name, head_length 257
  over.insert(over.end(), kMaxConnectName + 1, 'a');
  EXPECT_EQ(feed(over), WireError::kMalformed) << "a 254-byte name";
  EXPECT_THROW(encode_connect_stream_head({""}), std::invalid_argument);
  EXPECT_THROW(encode_connect_stream_head({std::string(kMaxConnectName + 1, 'a')}), std::invalid_argument);
}

TEST(ConnectStream, ReplyReaderInAnyFragmentationAndAtItsLimit) {
  Bytes wire = encode_connect_reply(ConnectStatus::kUnreachable, "db.localhost: refused");
  wire.push_back('Z');  // the service's first byte would follow a connected reply
  for (size_t step = 1; step <= wire.size(); ++step) {
    ConnectReplyReader r;
    ConnectReply reply;
    size_t off = 0, used = 0;
    WireError e = WireError::kNeedMore;
    while (e == WireError::kNeedMore && off < wire.size()) {
      const auto chunk = std::span<const uint8_t>(wire).subspan(off, std::min(step, wire.size() - off));
      e = r.feed(chunk, used, reply);
      off += used;
    }
    ASSERT_EQ(e, WireError::kNone) << "step " << step;
    EXPECT_EQ(reply.status, 5u);
    EXPECT_EQ(reply.message, "db.localhost: refused");
    EXPECT_FALSE(reply.connected());
    EXPECT_EQ(off, wire.size() - 1);
  }
  {
    ConnectReplyReader r;
    ConnectReply reply;
    size_t used = 0;
    const Bytes ok{0x00, 0x00};
    EXPECT_EQ(r.feed(ok, used, reply), WireError::kNone);
    EXPECT_TRUE(reply.connected());
    EXPECT_EQ(used, 2u);
  }
  {
    ConnectReplyReader r;
    ConnectReply reply;
    size_t used = 0;
    const Bytes too_long{0x02, 0x42, 0x01};  // message length 513
    EXPECT_EQ(r.feed(too_long, used, reply), WireError::kTooLarge);
  }
}

TEST(ConnectClaim, ScopeTable) {
  TokenClaims c = sample_claims();
  EXPECT_FALSE(token_may_connect(c, "db.localhost")) << "no connect claim: nothing";
  c.connect = {"db.localhost", "*.mesh.localhost"};
  EXPECT_TRUE(token_may_connect(c, "db.localhost"));
  EXPECT_TRUE(token_may_connect(c, "DB.Localhost"));
  EXPECT_TRUE(token_may_connect(c, "a.mesh.localhost"));
  EXPECT_FALSE(token_may_connect(c, "a.b.mesh.localhost")) << "one label, as for hosts";
  EXPECT_FALSE(token_may_connect(c, "mesh.localhost"));
  EXPECT_FALSE(token_may_connect(c, "alice.localhost")) << "hosts (publish) is not connect (reach)";
  EXPECT_FALSE(token_may_connect(c, "db.localhost:80"));
}

TEST(ConnectClaim, JsonRoundTripAndOptional) {
  SigningKey key = SigningKey::generate();
  VerifierKeySet keys;
  keys.add_pem(key.public_pem());
  TokenClaims c = sample_claims();
  c.connect = {"db.localhost", "*.localhost"};
  const auto r = keys.verify(key.sign(c), kNow);
  ASSERT_TRUE(r.ok()) << r.message();
  EXPECT_EQ(r.claims().connect, c.connect);
  // Without the claim: as before (older tokens verify), and it reaches nothing.
  const auto plain = keys.verify(key.sign(sample_claims()), kNow);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain.claims().connect.empty());
  // The payload of a token without it has no "connect" member at all.
  json p = payload_json(sample_claims());
  EXPECT_FALSE(p.contains("connect"));
  auto crafted = [&](const json& payload) { return keys.verify(craft(key, header_json(key.kid()), payload), kNow); };
  p["connect"] = "db.localhost";
  EXPECT_FALSE(crafted(p).ok()) << "not an array";
  p["connect"] = json::array({1});
  EXPECT_FALSE(crafted(p).ok()) << "not strings";
  p["connect"] = json::array({"bad name"});
  EXPECT_FALSE(crafted(p).ok()) << "not a name";
  p["connect"] = json(std::vector<std::string>(kMaxTokenHosts + 1, "a.localhost"));
  EXPECT_FALSE(crafted(p).ok()) << "65 names";
  p["connect"] = json(std::vector<std::string>(kMaxTokenHosts, "a.localhost"));
  EXPECT_TRUE(crafted(p).ok()) << "64 names: the cap";
  c.connect = {"bad name"};
  EXPECT_THROW(key.sign(c), std::invalid_argument);
}

}  // namespace
}  // namespace wtmesh::tunnel
