// WebTransport over HTTP/2 end to end on loopback sockets: the agent's client (agent/h2_wt_client.h: TCP,
// TLS with ALPN h2, nghttp2, wt::H2Session) against a real EdgeServer's HTTPS listener
// (edge/h2_webtransport.cc), with the edge's real acceptors: /echo, and the tunnel service's token
// checks on /ingress-mesh. The tunnels themselves over h2 are in tests/peers/http_tunnel_wt_h2.sh.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <map>
#include <sstream>

#include "../support/edge_thread.h"
#include "../support/run_until.h"
#include "../support/temp_dir.h"
#include "agent/doctor.h"
#include "agent/wt_client.h"
#include "edge/edge_server.h"
#include "tunnel/wire.h"

namespace wtmesh {
namespace {

namespace asio = boost::asio;
using test::EdgeThread;
using test::TempDir;

struct Recorder final : wt::SessionHandler {
  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_refused(const wt::ConnectResponse& r) override { refused = r; }
  void on_incoming_stream(wt::StreamId, bool) override {}
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    received[id].append(reinterpret_cast<const char*>(data.data()), data.size());
    if (fin) fins[id] = true;
    session->consume(id, data.size());
  }
  void on_stream_reset(wt::StreamId, std::optional<uint32_t>) override {}
  void on_datagram(std::span<const uint8_t> p) override {
    datagrams.emplace_back(reinterpret_cast<const char*>(p.data()), p.size());
  }
  void on_closed(uint32_t, std::string_view r) override {
    closed = true;
    reason = std::string(r);
  }
  wt::Session* session = nullptr;
  bool ready = false, closed = false;
  std::optional<wt::ConnectResponse> refused;
  std::string reason;
  std::map<wt::StreamId, std::string> received;
  std::map<wt::StreamId, bool> fins;
  std::vector<std::string> datagrams;
};

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class EdgeWtH2 : public ::testing::Test {
 protected:
  void SetUp() override {
    edge::EdgeOptions opts;
    opts.listen = asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    opts.state_dir = dir_.path();
    edge_ = std::make_unique<EdgeThread>(opts);
  }
  std::unique_ptr<agent::WtClient> dial() {
    auto c =
        std::make_unique<agent::WtClient>(io_, quic::TlsClientContext::with_ca_file(dir_.path() / "ca.pem"));
    c->use_transport(agent::EdgeTransport::kH2);
    std::string error;
    EXPECT_TRUE(c->dial({"127.0.0.1", edge_->port(), ""}, &error)) << error;
    return c;
  }
  wt::Session* open(agent::WtClient& c, Recorder& rec, const std::string& path,
                    const wt::HeaderPairs& extra = {}) {
    std::string error;
    wt::Session* s = c.open_session(path, extra, &rec, &error);
    EXPECT_NE(s, nullptr) << error;
    return s;
  }
  bool run_until(const std::function<bool()>& done,
                 std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }
  TempDir dir_;
  std::unique_ptr<EdgeThread> edge_;
  asio::io_context io_;
};

TEST_F(EdgeWtH2, DoctorPassesOverH2AndSaysSo) {
  agent::DoctorOptions opts;
  opts.edge_url = "https://127.0.0.1:" + std::to_string(edge_->port());
  opts.ca_file = dir_.path() / "ca.pem";
  opts.transport = agent::EdgeTransport::kH2;
  std::ostringstream out;
  const auto report = agent::run_doctor(opts, out);
  EXPECT_TRUE(report.ok) << out.str();
  EXPECT_EQ(report.transport, agent::EdgeTransport::kH2);
  EXPECT_EQ(report.datagrams_echoed, opts.rounds) << out.str();
  EXPECT_NE(out.str().find("all checks passed (transport h2)"), std::string::npos) << out.str();
  EXPECT_NE(out.str().find(" h2)"), std::string::npos) << out.str();  // TLS summary names ALPN h2
}

TEST_F(EdgeWtH2, EchoOfAMegabyteStreamAndDatagramsOverH2) {
  Recorder rec;
  auto c = dial();
  wt::Session* s = open(*c, rec, "/echo");
  ASSERT_TRUE(run_until([&] { return rec.ready || rec.closed; })) << rec.reason;
  ASSERT_TRUE(rec.ready) << rec.reason;
  EXPECT_EQ(s->info().transport, wt::Transport::kHttp2);
  std::string big(1 << 20, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 131 + 7);
  const auto id = s->open_bidi_stream();
  ASSERT_TRUE(id);
  size_t off = 0;
  ASSERT_TRUE(run_until(
      [&] {
        if (off < big.size()) off += s->write(*id, as_bytes(std::string_view(big).substr(off)), true);
        return rec.fins[*id];
      },
      std::chrono::seconds(20)));
  EXPECT_EQ(rec.received[*id], big);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s->send_datagram(as_bytes("dg" + std::to_string(i))));
  ASSERT_TRUE(run_until([&] { return rec.datagrams.size() == 5; }));
  EXPECT_EQ(rec.datagrams.front(), "dg0");  // over TCP they come back in order, none lost
  s->close(0, "done");
  EXPECT_TRUE(run_until([&] { return rec.closed; }));
}

TEST_F(EdgeWtH2, TheTunnelServiceChecksTheTokenOverH2) {
  const wt::HeaderPairs version = {
      {std::string(tunnel::kProtocolHeader), std::to_string(tunnel::kProtocolVersion)}};
  {
    Recorder rec;
    auto c = dial();
    open(*c, rec, std::string(tunnel::kSessionPath), version);
    ASSERT_TRUE(run_until([&] { return rec.closed; }));
    ASSERT_TRUE(rec.refused);
    EXPECT_EQ(rec.refused->status, 401);
    const std::string* why = wt::find_header(rec.refused->headers, tunnel::kErrorHeader);
    ASSERT_NE(why, nullptr);
    EXPECT_EQ(*why, "missing bearer token");
  }
  {
    Recorder rec;
    auto c = dial();
    wt::HeaderPairs h = version;
    h.emplace_back("authorization", "Bearer not.a.token");
    open(*c, rec, std::string(tunnel::kSessionPath), h);
    ASSERT_TRUE(run_until([&] { return rec.closed; }));
    ASSERT_TRUE(rec.refused);
    EXPECT_EQ(rec.refused->status, 401);
    const std::string* why = wt::find_header(rec.refused->headers, tunnel::kErrorHeader);
    ASSERT_NE(why, nullptr);
    EXPECT_EQ(why->rfind("invalid token", 0), 0u) << *why;
  }
  {
    Recorder rec;
    auto c = dial();
    open(*c, rec, "/nothing-here");
    ASSERT_TRUE(run_until([&] { return rec.closed; }));
    ASSERT_TRUE(rec.refused);
    EXPECT_EQ(rec.refused->status, 404);
  }
}

}  // namespace
}  // namespace wtmesh
