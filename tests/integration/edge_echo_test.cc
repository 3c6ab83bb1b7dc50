// The edge's /echo service over real QUIC on 127.0.0.1, driven by our WebTransport client:
// the whole stack (quic → h3 → wt → edge) on sockets. Browser and gtlsclient runs are in
// tests/peers/; these cover what a peer cannot be made to do on demand (caps, large transfers,
// state cleanup).
#include <gtest/gtest.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <filesystem>
#include <future>
#include <map>
#include <random>
#include <sstream>
#include <thread>

#include "../support/edge_thread.h"
#include "../support/run_until.h"
#include "../support/temp_dir.h"
#include "agent/doctor.h"
#include "agent/wt_client.h"
#include "edge/edge_server.h"

namespace wtmesh {
namespace {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using test::EdgeThread;
using test::TempDir;

struct Recorder final : wt::SessionHandler {
  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_refused(const wt::ConnectResponse& r) override { refused_status = r.status; }
  void on_incoming_stream(wt::StreamId id, bool) override { incoming.push_back(id); }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    auto& r = received[id];
    r.insert(r.end(), data.begin(), data.end());
    if (fin) fins[id] = true;
    session->consume(id, data.size());
  }
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override { resets[id] = code; }
  void on_stream_writable(wt::StreamId) override { writable++; }
  void on_streams_available() override { streams_available++; }
  void on_datagram(std::span<const uint8_t> p) override { datagrams.emplace_back(p.begin(), p.end()); }
  void on_closed(uint32_t c, std::string_view r) override {
    closed = true;
    code = c;
    reason = std::string(r);
  }
  wt::Session* session = nullptr;
  bool ready = false, closed = false;
  uint32_t code = 0;
  int refused_status = 0;  // the typed refusal (on_refused), 0 if none
  std::string reason;
  int writable = 0;
  int streams_available = 0;
  std::vector<wt::StreamId> incoming;
  std::map<wt::StreamId, std::vector<uint8_t>> received;
  std::map<wt::StreamId, bool> fins;
  std::map<wt::StreamId, std::optional<uint32_t>> resets;
  std::vector<std::vector<uint8_t>> datagrams;
};

class EdgeEcho : public ::testing::Test {
 protected:
  void start_edge(std::vector<std::string> origins = {}, bool echo = true) {
    edge::EdgeOptions opts;
    opts.listen = asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    opts.state_dir = dir_.path();
    opts.allowed_origins = std::move(origins);
    opts.echo = echo;
    edge_ = std::make_unique<EdgeThread>(opts);
  }
  void SetUp() override { start_edge(); }

  std::unique_ptr<agent::WtClient> dial() {
    auto c =
        std::make_unique<agent::WtClient>(io_, quic::TlsClientContext::with_ca_file(dir_.path() / "ca.pem"));
    std::string error;
    EXPECT_TRUE(c->dial({"127.0.0.1", edge_->port(), ""}, &error)) << error;
    return c;
  }
  wt::H3Session* open(agent::WtClient& c, Recorder& rec, const std::string& path = "/echo",
                      const wt::HeaderPairs& extra = {}) {
    std::string error;
    auto* s = dynamic_cast<wt::H3Session*>(c.open_session(path, extra, &rec, &error));
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

TEST_F(EdgeEcho, DoctorPasses) {
  agent::DoctorOptions opts;
  opts.edge_url = "https://127.0.0.1:" + std::to_string(edge_->port());
  opts.ca_file = dir_.path() / "ca.pem";
  std::ostringstream out;
  const auto report = agent::run_doctor(opts, out);
  EXPECT_TRUE(report.ok) << out.str();
  EXPECT_GT(report.handshake_ms, 0);
  EXPECT_EQ(report.datagrams_echoed, opts.rounds);
}

TEST_F(EdgeEcho, DoctorReportsAnUntrustedCertificate) {
  TempDir other;
  quic::ensure_state_certs(other.path());
  agent::DoctorOptions opts;
  opts.edge_url = "https://127.0.0.1:" + std::to_string(edge_->port());
  opts.ca_file = other.path() / "ca.pem";
  opts.timeout = std::chrono::seconds(3);
  std::ostringstream out;
  const auto report = agent::run_doctor(opts, out);
  EXPECT_FALSE(report.ok);
  EXPECT_NE(report.failure.find("handshake"), std::string::npos) << report.failure;
}

TEST_F(EdgeEcho, ManyConnectionsShareOneSocket) {
  constexpr int kClients = 16;
  std::vector<std::unique_ptr<Recorder>> recs;
  std::vector<std::unique_ptr<agent::WtClient>> clients;
  std::vector<wt::H3Session*> sessions;
  for (int i = 0; i < kClients; ++i) {
    recs.push_back(std::make_unique<Recorder>());
    clients.push_back(dial());
    sessions.push_back(open(*clients.back(), *recs.back()));
  }
  ASSERT_TRUE(run_until(
      [&] { return std::all_of(recs.begin(), recs.end(), [](const auto& r) { return r->ready; }); }));
  EXPECT_EQ(edge_->on_edge([&] { return edge_->server().connection_count(); }), size_t{kClients})
      << "every client is its own connection, routed by connection id on the edge's one UDP socket";
  std::vector<wt::StreamId> ids;
  for (int i = 0; i < kClients; ++i) {
    auto id = sessions[i]->open_bidi_stream();
    ASSERT_TRUE(id);
    const std::string msg = "client " + std::to_string(i);
    sessions[i]->write(*id, {reinterpret_cast<const uint8_t*>(msg.data()), msg.size()}, true);
    ids.push_back(*id);
  }
  ASSERT_TRUE(run_until([&] {
    for (int i = 0; i < kClients; ++i) {
      if (!recs[i]->fins[ids[i]]) return false;
    }
    return true;
  }));
  for (int i = 0; i < kClients; ++i) {
    const auto& got = recs[i]->received[ids[i]];
    EXPECT_EQ(std::string(got.begin(), got.end()), "client " + std::to_string(i)) << "no cross-talk";
  }
  clients.clear();  // before the recorders they report to
}

TEST_F(EdgeEcho, LargeBidiAndUniTransfersComeBackIntact) {
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  wt::H3Session* s = open(*c, rec);
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
  std::vector<uint8_t> data(8 << 20);
  std::mt19937 rng(7);
  for (auto& b : data) b = static_cast<uint8_t>(rng());
  auto bidi = s->open_bidi_stream();
  auto uni = s->open_uni_stream();
  ASSERT_TRUE(bidi && uni);
  size_t sent_b = 0, sent_u = 0;
  ASSERT_TRUE(run_until(
      [&] {
        if (sent_b < data.size())
          sent_b += s->write(*bidi, std::span<const uint8_t>(data).subspan(sent_b), true);
        if (sent_u < data.size())
          sent_u += s->write(*uni, std::span<const uint8_t>(data).subspan(sent_u), true);
        return rec.fins[*bidi] && !rec.incoming.empty() && rec.fins[rec.incoming.back()];
      },
      std::chrono::seconds(60)));
  EXPECT_TRUE(rec.received[*bidi] == data);
  EXPECT_TRUE(rec.received[rec.incoming.back()] == data);
  EXPECT_GT(rec.writable, 0) << "8 MiB must have hit the send-buffer cap";
}

TEST_F(EdgeEcho, ManyStreamsLeaveNoState) {
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  wt::H3Session* s = open(*c, rec);
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
  // Ten times the per-session and QUIC stream limits, one after another.
  for (int i = 0; i < 1500; ++i) {
    std::optional<wt::StreamId> id;
    ASSERT_TRUE(run_until([&] { return (id = s->open_bidi_stream()).has_value(); })) << i;
    const uint8_t b = static_cast<uint8_t>(i);
    s->write(*id, {&b, 1}, true);
    ASSERT_TRUE(run_until([&] { return rec.fins[*id]; })) << i;
  }
  ASSERT_TRUE(run_until([&] { return s->stream_table_size() == 0; }));
  // Left: the CONNECT stream plus the two HTTP/3 control streams (no QPACK streams either way).
  EXPECT_EQ(c->connection()->stream_count(), 3u);
}

TEST_F(EdgeEcho, StreamCreditReturnsAndIsAnnounced) {
  Recorder rec;
  auto c = dial();
  wt::H3Session* s = open(*c, rec);
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
  // Open bidi streams until the edge's MAX_STREAMS stops us, then finish them all.
  std::vector<wt::StreamId> ids;
  while (auto id = s->open_bidi_stream()) ids.push_back(*id);
  // The edge's default limit, less the CONNECT stream.
  ASSERT_EQ(ids.size(), quic::TransportLimits{}.max_streams_bidi - 1);
  for (auto id : ids) s->write(id, {}, true);
  ASSERT_TRUE(run_until([&] { return rec.streams_available > 0; }));
  EXPECT_TRUE(s->open_bidi_stream().has_value());
}

TEST_F(EdgeEcho, CloseCodeAndReasonReachTheClient) {
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  wt::H3Session* s = open(*c, rec);
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
  // The client closes; its own handler hears its code back.
  s->close(4242, "bye");
  ASSERT_TRUE(run_until([&] { return rec.closed; }));
  EXPECT_EQ(rec.code, 4242u);
}

TEST_F(EdgeEcho, UnknownPathIs404) {
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  open(*c, rec, "/nope");
  ASSERT_TRUE(run_until([&] { return rec.closed; }));
  EXPECT_FALSE(rec.ready);
  EXPECT_EQ(rec.refused_status, 404);
}

TEST_F(EdgeEcho, EchoIsOffByDefault) {
  edge_.reset();
  start_edge({}, edge::EdgeOptions{}.echo);
  {
    Recorder rec;  // outlives the client, which may still report the session's end to it
    auto c = dial();
    open(*c, rec, "/echo", {{"origin", "https://anyone.example"}});
    ASSERT_TRUE(run_until([&] { return rec.closed; }));
    EXPECT_FALSE(rec.ready);
    EXPECT_EQ(rec.refused_status, 404);
  }
  // The doctor says what to do about it.
  agent::DoctorOptions opts;
  opts.edge_url = "https://127.0.0.1:" + std::to_string(edge_->port());
  opts.ca_file = dir_.path() / "ca.pem";
  opts.timeout = std::chrono::seconds(5);
  std::ostringstream out;
  EXPECT_FALSE(agent::run_doctor(opts, out).ok);
  EXPECT_NE(out.str().find("--echo"), std::string::npos) << out.str();
}

TEST_F(EdgeEcho, OriginOutsideTheAllowListIs403) {
  edge_.reset();
  start_edge({"https://good.example"});
  {
    Recorder rec;
    auto c = dial();
    open(*c, rec, "/echo", {{"origin", "https://evil.example"}});
    ASSERT_TRUE(run_until([&] { return rec.closed; }));
    EXPECT_EQ(rec.refused_status, 403);
  }
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  open(*c, rec, "/echo", {{"origin", "https://good.example"}});
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
}

TEST_F(EdgeEcho, RenewedCertificateServesNewConnections) {
  auto check = [&] { return edge_->on_edge([&] { return edge_->server().check_certificates(); }); };
  const std::string old_hash = edge_->server().certs().sha256_hex;
  EXPECT_FALSE(check()) << "a fresh leaf is not renewed";
  // A leaf that is gone (or expiring) is reissued; new connections must present the new one.
  std::filesystem::remove(dir_.path() / "cert.pem");
  ASSERT_TRUE(check());
  const std::string new_hash = edge_->on_edge([&] { return edge_->server().certs().sha256_hex; });
  EXPECT_NE(new_hash, old_hash);
  agent::DoctorOptions opts;
  opts.edge_url = "https://127.0.0.1:" + std::to_string(edge_->port());
  opts.ca_file = dir_.path() / "ca.pem";
  opts.pin_sha256 = new_hash;
  std::ostringstream out;
  EXPECT_TRUE(agent::run_doctor(opts, out).ok) << out.str();
}

TEST_F(EdgeEcho, DatagramsEcho) {
  Recorder rec;  // outlives the client, which may still report the session's end to it
  auto c = dial();
  wt::H3Session* s = open(*c, rec);
  ASSERT_TRUE(run_until([&] { return rec.ready; }));
  ASSERT_GT(s->max_datagram_size(), 1000u);
  std::vector<uint8_t> d(s->max_datagram_size(), 0x5c);
  ASSERT_TRUE(run_until([&] {
    s->send_datagram(d);
    return !rec.datagrams.empty();
  }));
  EXPECT_EQ(rec.datagrams.front(), d);
  std::vector<uint8_t> too_big(s->max_datagram_size() + 1, 1);
  EXPECT_FALSE(s->send_datagram(too_big));
}

}  // namespace
}  // namespace wtmesh
