// WebTransport over the edge's public HTTP/2 (draft-ietf-webtrans-http2-15, edge/h2_webtransport.cc):
// nghttp2's client session (a peer we did not write) sends the extended CONNECT and carries a client
// wt::H2Session's capsules as DATA; the edge's H2Connection hands an accepted session to the handler
// its acceptor chose. Checked: the SETTINGS both ways, the acceptor's view of the request, echo of a
// stream and a datagram, no capsule processed before the 2xx (§3.2), refusals (the acceptor's status
// and wtmesh-error, WebTransport not offered, a second session on the connection), the client's reset
// and the connection's end reaching the handler, and output a handler writes outside any glue call.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "directory_fixture.h"
#include "edge/h2_connection.h"
#include "h2_test_client.h"
#include "wt/h2_session.h"

namespace wtmesh::edge::test {
namespace {

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// The edge side's application: echoes streams and datagrams, records what happened in order.
struct EchoHandler final : wt::SessionHandler {
  wt::Session* session = nullptr;
  std::vector<std::string> events;
  std::string closed_reason;
  bool closed = false;
  void on_attached(wt::Session& s) override {
    session = &s;
    events.push_back("attached");
  }
  void on_ready() override { events.push_back("ready"); }
  void on_incoming_stream(wt::StreamId id, bool) override {
    events.push_back("stream " + std::to_string(id));
  }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    session->write(id, data, fin);
    session->consume(id, data.size());
  }
  void on_stream_reset(wt::StreamId, std::optional<uint32_t>) override {}
  void on_datagram(std::span<const uint8_t> payload) override { session->send_datagram(payload); }
  void on_closed(uint32_t, std::string_view reason) override {
    closed = true;
    closed_reason = reason;
    session = nullptr;
  }
};

// The client side's application: keeps what arrives.
struct ClientHandler final : wt::SessionHandler {
  std::map<wt::StreamId, std::string> data;
  std::map<wt::StreamId, bool> fin;
  std::vector<std::string> datagrams;
  bool ready = false;
  bool closed = false;
  wt::Session* session = nullptr;
  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override { ready = true; }
  void on_incoming_stream(wt::StreamId, bool) override {}
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> d, bool f) override {
    data[id].append(reinterpret_cast<const char*>(d.data()), d.size());
    fin[id] = fin[id] || f;
    session->consume(id, d.size());
  }
  void on_stream_reset(wt::StreamId, std::optional<uint32_t>) override {}
  void on_datagram(std::span<const uint8_t> p) override {
    datagrams.emplace_back(reinterpret_cast<const char*>(p.data()), p.size());
  }
  void on_closed(uint32_t, std::string_view) override { closed = true; }
};

std::vector<nghttp2_settings_entry> client_settings() {
  std::vector<nghttp2_settings_entry> s;
  for (const auto& [id, v] : wt::H2SessionConfig::default_local().entries()) s.push_back({id, v});
  return s;
}

class H2WebTransportTest : public DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    make(true);
  }
  void make(bool offered, size_t max_sessions = 1) {
    H2Config cfg;
    cfg.exchange.client = client();
    cfg.exchange.clock = clock_.fn();
    cfg.max_webtransport_sessions = max_sessions;
    if (offered) {
      cfg.webtransport_acceptor = [this](const wt::SessionInfo& info) -> wt::Accept {
        infos_.push_back(info);
        if (info.path != "/ingress-mesh") return {404, nullptr, {}};
        const std::string* auth = wt::find_header(info.headers, "authorization");
        if (auth == nullptr) return {401, nullptr, {{"wtmesh-error", "missing bearer token"}}};
        if (*auth != "Bearer good") return {401, nullptr, {{"wtmesh-error", "invalid token: bad signature"}}};
        handlers_.push_back(std::make_unique<EchoHandler>());
        return {200, handlers_.back().get(), {{"wtmesh-protocol", "1"}}};
      };
    }
    conn_ = std::make_unique<H2Connection>(
        dir_, cfg,
        ConnectionHooks{[this] { ++wakes_; }, [this](const RequestLog& l) { logs_.push_back(l); }});
  }
  // A session request; the client's H2Session is created with it, as the agent does.
  int32_t open(std::string token = "Bearer good", std::string path = "/ingress-mesh") {
    std::vector<std::pair<std::string, std::string>> fields;
    if (!token.empty()) fields.emplace_back("authorization", token);
    const int32_t id = client_.extended_connect("webtransport", path, "edge.localhost", fields);
    wt::H2SessionConfig cfg;
    for (const auto& [k, v] : client_.server_settings)
      if (k <= 0xffff) cfg.peer.apply(static_cast<uint16_t>(k), v);
    sessions_[id] = std::make_unique<wt::H2Session>(wt::Role::kClient, cfg, wt::SessionInfo{}, &app_);
    return id;
  }
  // Moves bytes both ways (client session <-> nghttp2 client <-> H2Connection) until quiet.
  void pump() {
    for (int i = 0; i < 200; ++i) {
      bool moved = false;
      for (auto& [id, s] : sessions_) {
        auto& r = client_.results[id];
        if (s->state() == wt::H2Session::State::kRequested && r.status() != 0) {
          s->on_response(wt::ConnectResponse{r.status(), {}});
          moved = true;
        }
        if (r.body.size() > fed_[id]) {
          s->receive(as_bytes(std::string_view(r.body).substr(fed_[id])), false);
          fed_[id] = r.body.size();
          moved = true;
        }
        if (const auto out = s->output(); !out.empty()) {
          client_.send(id, std::string_view(reinterpret_cast<const char*>(out.data()), out.size()));
          s->consume_output(out.size());
          moved = true;
        }
      }
      pending_in_ += client_.output();
      if (!pending_in_.empty() && !conn_->finished()) {
        const size_t n = conn_->on_client_bytes(as_bytes(pending_in_));
        pending_in_.erase(0, n);
        moved = moved || n > 0;
      }
      for (auto out = conn_->client_output(); !out.empty(); out = conn_->client_output()) {
        EXPECT_TRUE(client_.input(out));
        conn_->on_client_written(out.size());
        moved = true;
      }
      if (!moved) return;
    }
    FAIL() << "pump did not settle";
  }
  // The handlers outlive the connection (it tells them their sessions' end when it goes).
  std::vector<std::unique_ptr<EchoHandler>> handlers_;
  H2TestClient client_{client_settings()};
  std::unique_ptr<H2Connection> conn_;
  std::vector<wt::SessionInfo> infos_;
  ClientHandler app_;
  std::map<int32_t, std::unique_ptr<wt::H2Session>> sessions_;
  std::map<int32_t, size_t> fed_;
  std::string pending_in_;
  int wakes_ = 0;
  std::vector<RequestLog> logs_;
};

TEST_F(H2WebTransportTest, SettingsAreExchangedBothWays) {
  pump();
  EXPECT_EQ(client_.server_settings[wt::kSettingsWtEnabled], 1u);
  EXPECT_EQ(client_.server_settings[NGHTTP2_SETTINGS_ENABLE_CONNECT_PROTOCOL], 1u);
  const wt::H2WtSettings ours = wt::H2SessionConfig::default_local();
  EXPECT_EQ(client_.server_settings[wt::kSettingsWtInitialMaxData], ours.initial_max_data);
  EXPECT_EQ(client_.server_settings[wt::kSettingsWtInitialMaxStreamsBidi], ours.initial_max_streams_bidi);
  EXPECT_EQ(conn_->peer_webtransport_settings(), ours);  // the client's, read from its SETTINGS frame
}

TEST_F(H2WebTransportTest, AcceptedSessionEchoesAStreamAndADatagram) {
  pump();
  const int32_t id = open();
  pump();
  ASSERT_EQ(client_.results[id].status(), 200);
  EXPECT_EQ(client_.results[id].field("wtmesh-protocol"), "1");
  ASSERT_TRUE(app_.ready);
  ASSERT_EQ(infos_.size(), 1u);
  EXPECT_EQ(infos_[0].transport, wt::Transport::kHttp2);
  EXPECT_EQ(infos_[0].authority, "edge.localhost");
  EXPECT_EQ(infos_[0].peer, "192.0.2.1");
  EXPECT_EQ(conn_->webtransport_sessions(), 1u);
  EXPECT_TRUE(conn_->upgraded());

  auto& s = *sessions_[id];
  const auto sid = s.open_bidi_stream();
  ASSERT_TRUE(sid);
  std::string big(300 * 1024, 'x');  // over the session window and the output cap: credit must flow
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
  size_t off = 0;
  for (int i = 0; i < 200 && off < big.size(); ++i) {
    off += s.write(*sid, as_bytes(std::string_view(big).substr(off)), true);
    pump();
  }
  ASSERT_EQ(off, big.size());
  pump();
  EXPECT_EQ(app_.data[*sid], big);
  EXPECT_TRUE(app_.fin[*sid]);
  ASSERT_TRUE(s.send_datagram(as_bytes("ping")));
  pump();
  EXPECT_EQ(app_.datagrams, std::vector<std::string>{"ping"});

  s.close(0, "bye");
  pump();
  EXPECT_TRUE(handlers_[0]->closed);
  EXPECT_TRUE(app_.closed);
  EXPECT_EQ(conn_->webtransport_sessions(), 0u);
  EXPECT_FALSE(conn_->finished());  // the connection goes on
}

TEST_F(H2WebTransportTest, NoCapsuleIsProcessedBeforeTheResponse) {
  pump();
  const int32_t id = open();
  // The stream and its data go out in the same flight as the CONNECT, before any answer.
  sessions_[id]->on_response(wt::ConnectResponse{200, {}});  // the client acts as if accepted (0-RTT-like)
  const auto sid = sessions_[id]->open_bidi_stream();
  ASSERT_TRUE(sid);
  sessions_[id]->write(*sid, as_bytes("early"), false);
  pump();
  ASSERT_EQ(handlers_.size(), 1u);
  const auto& ev = handlers_[0]->events;
  ASSERT_GE(ev.size(), 3u);
  EXPECT_EQ(ev[0], "attached");
  EXPECT_EQ(ev[1], "ready");
  EXPECT_EQ(ev[2], "stream " + std::to_string(*sid));
  EXPECT_EQ(app_.data[*sid], "early");
}

TEST_F(H2WebTransportTest, RefusalsCarryTheAcceptorsStatusAndReason) {
  pump();
  const int32_t none = open("");
  const int32_t bad = open("Bearer forged");
  const int32_t path = open("Bearer good", "/elsewhere");
  pump();
  EXPECT_EQ(client_.results[none].status(), 401);
  EXPECT_EQ(client_.results[none].field("wtmesh-error"), "missing bearer token");
  EXPECT_EQ(client_.results[bad].status(), 401);
  EXPECT_EQ(client_.results[bad].field("wtmesh-error"), "invalid token: bad signature");
  EXPECT_EQ(client_.results[path].status(), 404);
  for (int32_t id : {none, bad, path}) {
    EXPECT_TRUE(client_.results[id].ended);
    EXPECT_TRUE(client_.results[id].closed);
    EXPECT_EQ(sessions_[id]->state(), wt::H2Session::State::kClosed);
  }
  EXPECT_TRUE(handlers_.empty());
  EXPECT_EQ(conn_->webtransport_sessions(), 0u);
  ASSERT_FALSE(logs_.empty());
  EXPECT_EQ(logs_[0].status, 401);
}

TEST_F(H2WebTransportTest, NotOfferedMeans501AndNoWtEnabledSetting) {
  make(false);
  pump();
  EXPECT_EQ(client_.server_settings.count(wt::kSettingsWtEnabled), 0u);
  EXPECT_EQ(client_.server_settings.count(wt::kSettingsWtInitialMaxData), 0u);
  const int32_t id = open();
  pump();
  EXPECT_EQ(client_.results[id].status(), 501);
  EXPECT_TRUE(infos_.empty());
}

TEST_F(H2WebTransportTest, ASecondSessionOnTheConnectionIsRefused) {
  pump();
  const int32_t first = open();
  pump();
  const int32_t second = open();
  pump();
  EXPECT_EQ(client_.results[first].status(), 200);
  EXPECT_EQ(client_.results[second].status(), 429);
  EXPECT_EQ(infos_.size(), 1u);  // refused before the acceptor
  EXPECT_EQ(conn_->webtransport_sessions(), 1u);
  // Once the first is over, another may come.
  sessions_[first]->close(0, "");
  pump();
  const int32_t third = open();
  pump();
  EXPECT_EQ(client_.results[third].status(), 200);
}

TEST_F(H2WebTransportTest, ClientResetAndConnectionEndReachTheHandler) {
  pump();
  const int32_t a = open();
  pump();
  ASSERT_EQ(handlers_.size(), 1u);
  client_.reset(a, NGHTTP2_CANCEL);
  pump();
  EXPECT_TRUE(handlers_[0]->closed);
  EXPECT_NE(handlers_[0]->closed_reason.find("reset"), std::string::npos) << handlers_[0]->closed_reason;
  EXPECT_EQ(conn_->webtransport_sessions(), 0u);

  open();
  pump();
  ASSERT_EQ(handlers_.size(), 2u);
  conn_->on_client_eof();
  EXPECT_TRUE(handlers_[1]->closed);
  conn_.reset();  // nothing left that points at the handlers
}

TEST_F(H2WebTransportTest, HandlerOutputOutsideAGlueCallWakesTheConnection) {
  pump();
  const int32_t id = open();
  pump();
  ASSERT_EQ(handlers_.size(), 1u);
  wt::Session& edge = *handlers_[0]->session;
  const auto sid = edge.open_uni_stream();  // e.g. a heartbeat from the tunnel's own timer
  ASSERT_TRUE(sid);
  const int before = wakes_;
  edge.write(*sid, as_bytes("tick"), true);
  EXPECT_GT(wakes_, before);
  EXPECT_TRUE(conn_->client_output().empty());  // nothing ran inside the session's call
  conn_->on_wake();                             // what the glue's posted pump does
  pump();
  EXPECT_EQ(app_.data[*sid], "tick");
  EXPECT_TRUE(app_.fin[*sid]);
  (void)id;
}

}  // namespace
}  // namespace wtmesh::edge::test
