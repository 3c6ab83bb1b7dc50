#include "edge/tunnel_service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "tunnel_service_fixture.h"

namespace wtmesh::edge {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class TunnelServiceTest : public test::TunnelServiceFixture<LocalRouteTable> {};

// A request stream's events that only note whether the stream was aborted.
struct AbortRecorder final : RequestStreamEvents {
  void on_response_data(std::span<const uint8_t>, bool) override {}
  void on_request_writable() override {}
  void on_stream_aborted(std::optional<uint32_t>, std::string_view) override { aborted = true; }
  void on_request_stopped(std::optional<uint32_t>) override {}
  bool aborted = false;
};

TEST_F(TunnelServiceTest, ValidTokenIsAcceptedWithTheVersion) {
  const wt::Accept a = connect(info("Bearer " + token(), "2, 1"));
  EXPECT_EQ(a.status, 200);
  ASSERT_NE(a.handler, nullptr);
  EXPECT_EQ(header(a, "wtmesh-protocol"), "1");
  EXPECT_EQ(service_->session_count(), 1u);
  EXPECT_NE(service_->find_owner("edge-t/1"), nullptr);
}

// Session features (docs/protocol.md §4.1): echoed only when the agent offered one the edge speaks.
TEST_F(TunnelServiceTest, FeaturesAreEchoedOnlyWhenOffered) {
  EXPECT_EQ(header(connect(info("Bearer " + token())), "wtmesh-features"), "<none>") << "an old agent: nothing";
  auto offered = info("Bearer " + token());
  offered.headers.emplace_back("wtmesh-features", "future-thing, trailers");
  const wt::Accept a = connect(offered);
  EXPECT_EQ(a.status, 200);
  EXPECT_EQ(header(a, "wtmesh-features"), "trailers");
  EXPECT_FALSE(static_cast<AgentSession*>(a.handler)->request_trailers())
      << "an agent that speaks only `trailers` (it predates request framing) never gets a framed request";
  auto unknown = info("Bearer " + token());
  unknown.headers.emplace_back("wtmesh-features", "future-thing");
  EXPECT_EQ(header(connect(unknown), "wtmesh-features"), "<none>");
  auto both = info("Bearer " + token());
  both.headers.emplace_back("wtmesh-features", "request-trailers, trailers");
  const wt::Accept b = connect(both);
  EXPECT_EQ(header(b, "wtmesh-features"), "trailers, request-trailers");
  EXPECT_TRUE(static_cast<AgentSession*>(b.handler)->request_trailers());
}

TEST_F(TunnelServiceTest, AuthenticationFailuresAre401) {
  const auto status = [&](const std::string& auth) { return connect(info(auth)).status; };
  EXPECT_EQ(status(""), 401) << "no token";
  EXPECT_EQ(status("Basic dXNlcjpwdw=="), 401) << "other scheme";
  EXPECT_EQ(status("Bearer not.a.token"), 401) << "malformed";
  std::string t = token();
  t.back() = t.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(status("Bearer " + t), 401) << "bad signature";
  EXPECT_EQ(status("Bearer " + token({"app.localhost"}, 600s, &stranger_)), 401) << "unknown kid";
  const std::string short_lived = token({"app.localhost"}, 10s);
  wall_ += 60s;  // past exp + 30 s leeway
  EXPECT_EQ(status("Bearer " + short_lived), 401) << "expired";
  wall_ -= 3600s;  // before nbf - leeway
  EXPECT_EQ(status("Bearer " + short_lived), 401) << "not yet valid";
  wall_ += 3540s;
  const wt::Accept a = connect(info("Bearer " + token({"app.localhost"}, 10s, &stranger_)));
  EXPECT_NE(header(a, "wtmesh-error"), "<none>");
  EXPECT_EQ(service_->session_count(), 0u);
}

TEST_F(TunnelServiceTest, AnAddressWithTooManyAuthFailuresGets429WithoutVerification) {
  const AuthFailureLimits limits = service_->config().auth_failures;
  auto from = [&](const std::string& peer, const std::string& auth) {
    wt::SessionInfo i = info(auth);
    i.peer = peer;
    return connect(i).status;
  };
  for (int i = 0; i < static_cast<int>(limits.burst); ++i)
    EXPECT_EQ(from("192.0.2.7", "Bearer x.y.z"), 401) << i;
  EXPECT_EQ(from("192.0.2.7", "Bearer x.y.z"), 429);
  // Even a good token is not looked at while the address has no attempt left.
  const auto reloads = reloads_;
  EXPECT_EQ(from("192.0.2.7", "Bearer " + token({"app.localhost"}, 600s, &later_key_)), 429);
  EXPECT_EQ(reloads_, reloads) << "no verification (an unknown kid would have reloaded the keys)";
  EXPECT_EQ(from("192.0.2.8", "Bearer " + token()), 200) << "another address is not affected";
  EXPECT_EQ(from("2001:db8::1", "Bearer x.y.z"), 401);
  // One attempt comes back after 1/per_second.
  clock_.t += std::chrono::milliseconds(static_cast<int>(1000 / limits.per_second) + 1);
  EXPECT_EQ(from("192.0.2.7", "Bearer " + token()), 200);
  EXPECT_EQ(from("192.0.2.7", ""), 401);
  EXPECT_EQ(from("192.0.2.7", ""), 429);
}

TEST_F(TunnelServiceTest, IPv6AddressesOfOneSlash64ShareABucket) {
  const AuthFailureLimits limits = service_->config().auth_failures;
  for (int i = 0; i < static_cast<int>(limits.burst); ++i) {
    wt::SessionInfo in = info("");
    in.peer = "2001:db8:1:2::" + std::to_string(i + 1);
    EXPECT_EQ(connect(in).status, 401);
  }
  wt::SessionInfo in = info("");
  in.peer = "2001:db8:1:2:ffff::9";
  EXPECT_EQ(connect(in).status, 429);
}

TEST_F(TunnelServiceTest, TokenForOtherDomainsIs403) {
  EXPECT_EQ(connect(info("Bearer " + token({"app.example.com", "*.example.com"}))).status, 403);
  EXPECT_EQ(connect(info("Bearer " + token({"localhost"}))).status, 403) << "the bare domain is no tunnel";
  EXPECT_EQ(connect(info("Bearer " + token({"app.example.com", "x.localhost"}))).status, 200);
}

TEST_F(TunnelServiceTest, NoCommonVersionIs400) {
  const wt::Accept a = connect(info("Bearer " + token(), "2"));
  EXPECT_EQ(a.status, 400);
  EXPECT_EQ(header(a, "wtmesh-error"), "unsupported protocol version");
  EXPECT_EQ(connect(info("Bearer " + token(), "")).status, 400);
  EXPECT_EQ(connect(info("Bearer " + token(), "11, 01")).status, 400);
  EXPECT_EQ(connect(info("Bearer " + token(), " 1 ")).status, 200);
}

TEST_F(TunnelServiceTest, AuthIsCheckedBeforeTheVersion) { EXPECT_EQ(connect(info("", "2")).status, 401); }

TEST_F(TunnelServiceTest, NewKeysAreReloadedOnUnknownKidAtMostEvery5s) {
  EXPECT_EQ(connect(info("Bearer " + token({"app.localhost"}, 600s, &later_key_))).status, 200);
  EXPECT_EQ(reloads_, 1);
  EXPECT_EQ(connect(info("Bearer " + token({"app.localhost"}, 600s, &stranger_))).status, 401);
  EXPECT_EQ(reloads_, 1) << "rate-limited";
  clock_.t += 5s;
  EXPECT_EQ(connect(info("Bearer " + token({"app.localhost"}, 600s, &stranger_))).status, 401);
  EXPECT_EQ(reloads_, 2);
}

TEST_F(TunnelServiceTest, SessionCapIs503) {
  make(1);
  EXPECT_EQ(connect(info("Bearer " + token())).status, 200);
  EXPECT_EQ(connect(info("Bearer " + token())).status, 503);
  sessions_[0]->peer_closes(0, "");
  EXPECT_EQ(connect(info("Bearer " + token())).status, 200);
}

TEST_F(TunnelServiceTest, OneTokenSubjectIsCappedInSessionsAndTunnelsAcrossSessions) {
  EdgeMetrics metrics;
  tweak_ = [&](TunnelServiceConfig& c) {
    c.max_sessions_per_subject = 2;
    c.max_tunnels_per_subject = 3;
    c.session.metrics = &metrics;
  };
  make();
  const std::string star = "Bearer " + token({"*.localhost"});  // a `*` token: any name
  ASSERT_EQ(connect(info(star)).status, 200);
  ASSERT_EQ(connect(info(star)).status, 200);
  const wt::Accept third = connect(info(star));
  EXPECT_EQ(third.status, 429) << "a third session of the same subject";
  EXPECT_NE(header(third, "wtmesh-error").find("per token subject"), std::string::npos);
  EXPECT_EQ(metrics.sessions_refused(SessionRefusal::kSubjectSessions), 1u);

  register_host(*sessions_[0], 1, "a.localhost");
  register_more(*sessions_[0], 2, "b.localhost");
  register_host(*sessions_[1], 1, "c.localhost");
  EXPECT_EQ(route("c.localhost").kind, RouteLookup::Kind::kFound);
  register_more(*sessions_[1], 2, "d.localhost");
  EXPECT_EQ(route("d.localhost").kind, RouteLookup::Kind::kUnknown) << "a fourth tunnel of the subject";
  EXPECT_NE(control_text(*sessions_[1]).find("at most 3 tunnels per token subject"), std::string::npos);
  register_more(*sessions_[0], 3, "e.localhost");
  EXPECT_EQ(route("e.localhost").kind, RouteLookup::Kind::kUnknown) << "on either session";
  EXPECT_EQ(metrics.tunnels_refused(TunnelRefusal::kSubjectCap), 2u);

  // Another subject is not affected.
  const std::string bob =
      "Bearer " + key_.sign(tunnel::make_claims("bob", {"*.localhost"}, std::chrono::seconds(600), wall_));
  ASSERT_EQ(connect(info(bob)).status, 200);
  register_host(*sessions_[2], 1, "f.localhost");
  EXPECT_EQ(route("f.localhost").kind, RouteLookup::Kind::kFound);

  // A session that ends gives its share back: one session and its two tunnels.
  sessions_[0]->peer_closes(0, "gone");
  service_->on_tick(clock_.t);
  ASSERT_EQ(connect(info(star)).status, 200);
  register_more(*sessions_[1], 4, "g.localhost");
  EXPECT_EQ(route("g.localhost").kind, RouteLookup::Kind::kFound);
  const std::string text = metrics.render({}, {});
  EXPECT_NE(text.find("wtmesh_tunnel_refusals_total{reason=\"subject_cap\"} 2"), std::string::npos) << text;
}

TEST_F(TunnelServiceTest, RoutesFoundOfflineAndUnknown) {
  ASSERT_EQ(connect(info("Bearer " + token({"app.localhost"}))).status, 200);
  register_host(*sessions_[0], 5, "app.localhost");
  RouteLookup r = route("APP.localhost");
  EXPECT_EQ(r.kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(r.tunnel_id, 5u);
  EXPECT_EQ(r.session, 1u);
  EXPECT_EQ(route("nobody.localhost").kind, RouteLookup::Kind::kUnknown);

  sessions_[0]->peer_closes(0, "agent quit");
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kOffline) << "recently seen: 502";
  clock_.t += 61s;
  service_->on_tick(clock_.t);
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kUnknown) << "after the grace: 404";
}

TEST_F(TunnelServiceTest, ReRegistrationReplacesOffline) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  sessions_[0]->peer_closes(0, "");
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[1], 1, "app.localhost");
  const RouteLookup r = route("app.localhost");
  EXPECT_EQ(r.kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(r.session, 2u);
}

// A second agent asking for a held name is refused "taken", and the holder gets a PING at once: if
// it is a dead agent (killed, restarted), the bytes in flight make the QUIC layer notice it.
TEST_F(TunnelServiceTest, TakenNameProbesTheHolder) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  const size_t control_before = sessions_[0]->streams[0].written.size();
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[1], 1, "app.localhost");
  const auto& answer = sessions_[1]->streams[0].written;
  const std::string text(answer.begin(), answer.end());
  EXPECT_NE(text.find("taken"), std::string::npos);
  // The holder's control stream got a PING frame (type 0x05) after its REGISTERED.
  const auto& held = sessions_[0]->streams[0].written;
  ASSERT_GT(held.size(), control_before);
  tunnel::ControlReader reader;
  std::vector<uint8_t> tail(held.begin() + static_cast<long>(control_before), held.end());
  std::vector<tunnel::ControlFrame> frames;
  ASSERT_EQ(reader.feed(tail, frames), tunnel::WireError::kNone);
  ASSERT_EQ(frames.size(), 1u);
  EXPECT_EQ(frames[0].type, static_cast<uint64_t>(tunnel::ControlType::kPing));
  // The newcomer itself is not probed (it holds nothing).
  EXPECT_EQ(route("app.localhost").session, 1u);
  // Asking again at once does not send another PING (one per AgentSession::kProbeInterval)...
  const size_t after_probe = held.size();
  auto again = [&](uint32_t id) {
    sessions_[1]->handler->on_stream_data(
        0,
        tunnel::encode_control_frame(
            tunnel::ControlType::kRegister,
            json{{"id", id}, {"type", "http"}, {"hostname", "app.localhost"}}.dump()),
        false);
  };
  again(2);
  EXPECT_EQ(sessions_[0]->streams[0].written.size(), after_probe);
  // ...but after the interval it does.
  clock_.t += AgentSession::kProbeInterval;
  again(3);
  EXPECT_GT(sessions_[0]->streams[0].written.size(), after_probe);
  EXPECT_FALSE(sessions_[1]->closed);
}

// The same agent's newer session (same wtmesh-agent-instance, same token subject) takes a name over
// from its older, live session in one step (protocol.md §3.5): the route never goes missing,
// requests already on the older session stay there, and the older session's end leaves no
// tombstone over the moved name.
TEST_F(TunnelServiceTest, TheSameAgentsNewerSessionTakesTheNameOver) {
  const std::string instance = "a1b2c3d4e5f6a7b8c9d0";
  auto with_instance = [&](std::string id) {
    wt::SessionInfo i = info("Bearer " + token());
    i.headers.emplace_back("wtmesh-agent-instance", std::move(id));
    return i;
  };
  ASSERT_EQ(connect(with_instance(instance)).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  ASSERT_EQ(route("app.localhost").session, 1u);
  AbortRecorder in_flight;
  StreamRef ref;
  ASSERT_EQ(service_->open_request(route("app.localhost"), "c", &in_flight, &ref),
            TunnelDirectory::OpenStatus::kOpened);

  ASSERT_EQ(connect(with_instance(instance)).status, 200);
  register_host(*sessions_[1], 7, "app.localhost");
  EXPECT_NE(control_text(*sessions_[1]).find("app.localhost"), std::string::npos);
  EXPECT_EQ(control_text(*sessions_[1]).find("taken"), std::string::npos) << control_text(*sessions_[1]);
  const RouteLookup r = route("app.localhost");
  EXPECT_EQ(r.kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(r.session, 2u);
  EXPECT_EQ(r.tunnel_id, 7u);
  // The request under way on the older session goes on there.
  const uint8_t b = 1;
  EXPECT_EQ(service_->write(ref, {&b, 1}, true), 1u);
  EXPECT_FALSE(in_flight.aborted);
  EXPECT_FALSE(sessions_[0]->closed) << "the edge does not close the older session: the agent does";
  // The older session ends: the moved name is not left offline behind it.
  sessions_[0]->peer_closes(0, "moved to a new session");
  EXPECT_EQ(route("app.localhost").session, 2u);
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kFound);
}

// A multi-worker edge: the agent's newer session landed on another worker (another service on the
// same route table) than its older one. The name is handed over through the remote hand-over (in the
// edge, WorkerDirectory::ask_hand_over posts to the holder's worker), answered later.
TEST_F(TunnelServiceTest, TheSameAgentsNewerSessionOnAnotherWorkerTakesTheNameOverLater) {
  tweak_ = [](TunnelServiceConfig& c) { c.edge_id = "E/w0"; };
  make();
  TunnelServiceConfig other_config;
  other_config.session.domain = "localhost";
  other_config.edge_id = "E/w1";
  other_config.wall_clock = [this] { return wall_; };
  tunnel::VerifierKeySet keys;
  keys.add_pem(key_.public_pem());
  TunnelService other(other_config, *routes_, keys);
  std::vector<std::function<void()>> posted;  // the answers, as another worker would post them
  other.set_remote_hand_over([&](const std::string& holder, const std::string& type, const std::string& name,
                                 const std::string& instance, const std::string& subject,
                                 std::function<void(bool)> done) {
    if (holder.rfind("E/w0/", 0) != 0) return false;
    posted.push_back([=, this] {
      done(service_->hand_over_to(holder, RouteKey{type, name}, instance, subject));
    });
    return true;
  });
  auto with_instance = [&](const std::string& id) {
    wt::SessionInfo i = info("Bearer " + token());
    i.headers.emplace_back("wtmesh-agent-instance", id);
    return i;
  };
  ASSERT_EQ(connect(with_instance("agentaaaaaaaaaaaaaaa")).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  std::array<test::FakeSession, 2> there;
  for (size_t i = 0; i < there.size(); ++i) {
    const wt::Accept a =
        other.accept(with_instance(i == 0 ? "agentaaaaaaaaaaaaaaa" : "agentbbbbbbbbbbbbbbb"));
    ASSERT_EQ(a.status, 200);
    there[i].handler = a.handler;
    a.handler->on_attached(there[i]);
  }
  // Another agent (another instance) asks first: the holder's worker says no, it is refused "taken".
  register_host(there[1], 1, "app.localhost");
  ASSERT_EQ(posted.size(), 1u) << "asked of the holder's worker";
  std::exchange(posted, {})[0]();
  EXPECT_NE(control_text(there[1]).find("taken"), std::string::npos);
  // The same agent's newer session: handed over, once the answer came back.
  register_host(there[0], 7, "app.localhost");
  ASSERT_EQ(posted.size(), 1u);
  EXPECT_EQ(control_text(there[0]).find("app.localhost"), std::string::npos) << "not answered yet";
  EXPECT_EQ(route("app.localhost").session, 1u) << "still the older session's meanwhile";
  std::exchange(posted, {})[0]();
  EXPECT_NE(control_text(there[0]).find("app.localhost"), std::string::npos);
  EXPECT_EQ(control_text(there[0]).find("taken"), std::string::npos) << control_text(there[0]);
  struct Answer final : RouteEvents {
    void on_route(const RouteLookup& l) override { got = l; }
    RouteLookup got;
  } answer;
  other.route("app.localhost", &answer);
  EXPECT_EQ(answer.got.kind, RouteLookup::Kind::kFound);
  EXPECT_EQ(answer.got.tunnel_id, 7u) << "the newer session holds it now";
  for (auto& f : there) f.peer_closes(0, "test over");
}

// Another process of the same subject (another instance id), or a session without one, gets "taken".
TEST_F(TunnelServiceTest, AnotherInstanceOrNoInstanceIsStillTaken) {
  auto with_instance = [&](std::optional<std::string> id) {
    wt::SessionInfo i = info("Bearer " + token());
    if (id) i.headers.emplace_back("wtmesh-agent-instance", *id);
    return i;
  };
  ASSERT_EQ(connect(with_instance("aaaaaaaaaaaaaaaaaaaa")).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  ASSERT_EQ(connect(with_instance("bbbbbbbbbbbbbbbbbbbb")).status, 200);
  register_host(*sessions_[1], 1, "app.localhost");
  EXPECT_NE(control_text(*sessions_[1]).find("taken"), std::string::npos);
  ASSERT_EQ(connect(with_instance(std::nullopt)).status, 200);
  register_host(*sessions_[2], 1, "app.localhost");
  EXPECT_NE(control_text(*sessions_[2]).find("taken"), std::string::npos);
  // A malformed id is ignored, so it matches nothing (not even another malformed one).
  ASSERT_EQ(connect(with_instance("short")).status, 200);
  register_host(*sessions_[3], 1, "app.localhost");
  ASSERT_EQ(connect(with_instance("short")).status, 200);
  register_host(*sessions_[4], 1, "app.localhost");
  EXPECT_NE(control_text(*sessions_[4]).find("taken"), std::string::npos);
  EXPECT_EQ(route("app.localhost").session, 1u);
}

// The same instance id under another token subject does not take a name over.
TEST_F(TunnelServiceTest, TheInstanceIdAloneDoesNotAuthorizeAHandover) {
  const std::string instance = "cccccccccccccccccccc";
  wt::SessionInfo alice = info("Bearer " + token());
  alice.headers.emplace_back("wtmesh-agent-instance", instance);
  ASSERT_EQ(connect(alice).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  wt::SessionInfo mallory =
      info("Bearer " + key_.sign(tunnel::make_claims("mallory", {"app.localhost"}, 600s, wall_)));
  mallory.headers.emplace_back("wtmesh-agent-instance", instance);
  ASSERT_EQ(connect(mallory).status, 200);
  register_host(*sessions_[1], 1, "app.localhost");
  EXPECT_NE(control_text(*sessions_[1]).find("taken"), std::string::npos);
  EXPECT_EQ(route("app.localhost").session, 1u);
}

TEST_F(TunnelServiceTest, OfflineNamesAreCapped) {
  make(100, 2);
  ASSERT_EQ(connect(info("Bearer " + token({"*.localhost"}))).status, 200);
  register_host(*sessions_[0], 1, "a.localhost");
  std::vector<uint8_t> more;
  for (uint32_t i = 2; i <= 3; ++i) {
    auto f = tunnel::encode_control_frame(
        tunnel::ControlType::kRegister,
        json{{"id", i}, {"type", "http"}, {"hostname", std::string(1, char('a' + i - 1)) + ".localhost"}}
            .dump());
    sessions_[0]->handler->on_stream_data(0, f, false);
  }
  EXPECT_EQ(routes_->size(), 3u);
  sessions_[0]->peer_closes(0, "");
  int offline = 0;
  for (const char* h : {"a.localhost", "b.localhost", "c.localhost"}) {
    offline += route(h).kind == RouteLookup::Kind::kOffline;
  }
  EXPECT_EQ(offline, 2);
}

TEST_F(TunnelServiceTest, DirectoryOpensStreamsOnTheOwningSession) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  AbortRecorder ev;
  const RouteLookup r = route("app.localhost");
  StreamRef ref;
  ASSERT_EQ(service_->open_request(r, "c", &ev, &ref), TunnelDirectory::OpenStatus::kOpened);
  EXPECT_EQ(ref.session, 1u);
  const uint8_t b = 1;
  EXPECT_EQ(service_->write(ref, {&b, 1}, true), 1u);
  EXPECT_EQ(sessions_[0]->streams[ref.id].written.size(), 1u);
  service_->consume(ref, 3);
  EXPECT_EQ(sessions_[0]->streams[ref.id].consumed, 3u);
  sessions_[0]->peer_closes(0, "");
  EXPECT_TRUE(ev.aborted);
  EXPECT_EQ(service_->open_request(r, "c", &ev, &ref), TunnelDirectory::OpenStatus::kGone);
  EXPECT_EQ(service_->write(ref, {&b, 1}, false), 0u);
  service_->on_tick(clock_.t);  // collects the ended session
  EXPECT_EQ(service_->find_session(1), nullptr);
}

TEST_F(TunnelServiceTest, DeadlinesAndCloseAll) {
  ASSERT_EQ(connect(info("Bearer " + token({"app.localhost"}, 60s))).status, 200);
  ASSERT_TRUE(service_->next_deadline());
  EXPECT_EQ(*service_->next_deadline(), clock_.t + 30s) << "heartbeat: 3 x 10 s";
  bool woke = false;
  service_->set_wakeup([&] { woke = true; });
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  EXPECT_TRUE(woke);
  service_->close_all(tunnel::kCloseDraining, "edge shutting down");
  EXPECT_EQ(sessions_[0]->close_code, tunnel::kCloseDraining);
  EXPECT_EQ(sessions_[1]->close_code, tunnel::kCloseDraining);
  EXPECT_EQ(service_->session_count(), 0u);
}

TEST_F(TunnelServiceTest, TokenDeadlineIncludesTheLeeway) {
  ASSERT_EQ(connect(info("Bearer " + token({"app.localhost"}, 60s))).status, 200);
  auto* s = service_->find_session(1);
  ASSERT_NE(s, nullptr);
  // Keep heartbeats alive by feeding control bytes, then pass exp + 30 s.
  sessions_[0]->handler->on_incoming_stream(0, true);
  std::vector<uint8_t> kind{0x00};
  sessions_[0]->handler->on_stream_data(0, kind, false);
  for (int i = 0; i < 8; ++i) {
    clock_.t += 10s;
    auto f = tunnel::encode_control_frame(tunnel::ControlType::kPing, json{{"seq", i}}.dump());
    sessions_[0]->handler->on_stream_data(0, f, false);
    service_->on_tick(clock_.t);
  }
  clock_.t += 9s;
  service_->on_tick(clock_.t);
  EXPECT_FALSE(sessions_[0]->closed) << "89 s: before exp (60 s) + leeway (30 s)";
  clock_.t += 1s;
  service_->on_tick(clock_.t);
  EXPECT_EQ(sessions_[0]->close_code, tunnel::kCloseTokenExpired);
}

// The edge drains (docs/protocol.md §3.6): every live session gets DRAIN, new ones 503 "draining"
// before any verification; the handoff waits for the sessions holding tunnels until their agent says
// it moved (its own DRAIN).
TEST_F(TunnelServiceTest, DrainAsksSessionsToMoveAndRefusesNewOnes) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  EXPECT_EQ(service_->sessions_to_move(), 1u) << "only a session holding a tunnel is waited for";
  service_->drain();
  EXPECT_TRUE(service_->draining());
  EXPECT_EQ(sessions_[0]->drains, 1);
  EXPECT_EQ(sessions_[1]->drains, 1);
  const wt::Accept late = connect(info("Bearer " + token()));
  EXPECT_EQ(late.status, 503);
  EXPECT_EQ(header(late, "wtmesh-error").rfind("draining", 0), 0u) << header(late, "wtmesh-error");
  const wt::Accept no_token = connect(info(""));
  EXPECT_EQ(no_token.status, 503) << "refused before the token is looked at";
  EXPECT_EQ(service_->sessions_to_move(), 1u);
  sessions_[0]->handler->on_drain();  // the agent: "moved"
  EXPECT_EQ(service_->sessions_to_move(), 0u);
  EXPECT_EQ(service_->session_count(), 2u) << "the sessions go on until the edge closes them";
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kFound) << "still served here meanwhile";
}

TEST_F(TunnelServiceTest, AnAgentWhoseNewSessionComesBackHereIsNotWaitedFor) {
  // One edge, one address: the agent's new session after DRAIN reaches this same draining edge. It
  // has nowhere to move, so the handoff stops waiting for it (else every SIGTERM of a lone edge
  // with agents would wait the whole handoff).
  auto with_instance = [&](std::string id) {
    wt::SessionInfo i = info("Bearer " + token({"app.localhost", "db.localhost"}));
    i.headers.emplace_back("wtmesh-agent-instance", std::move(id));
    return i;
  };
  ASSERT_EQ(connect(with_instance("agentaaaaaaaaaaaaaaa")).status, 200);
  ASSERT_EQ(connect(with_instance("agentbbbbbbbbbbbbbbb")).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  register_host(*sessions_[1], 1, "db.localhost");
  service_->drain();
  EXPECT_EQ(service_->sessions_to_move(), 2u);
  EXPECT_EQ(connect(with_instance("agentaaaaaaaaaaaaaaa")).status, 503);
  EXPECT_EQ(service_->sessions_to_move(), 1u) << "agent a came back: not waited for; agent b still is";
  EXPECT_EQ(connect(with_instance("not an id")).status, 503);
  EXPECT_EQ(service_->sessions_to_move(), 1u) << "an invalid instance id matches nothing";
  EXPECT_EQ(route("app.localhost").kind, RouteLookup::Kind::kFound) << "its old session still serves";
}

// A multi-worker edge (edge/edge_workers.h): the agent's new session may land on another worker
// than the one holding its live session; their services share one ReturnedAgents list.
TEST_F(TunnelServiceTest, AnAgentThatCameBackToAnotherWorkerIsNotWaitedForEither) {
  auto returned = std::make_shared<ReturnedAgents>();
  tweak_ = [returned](TunnelServiceConfig& c) { c.returned = returned; };
  make();
  wt::SessionInfo i = info("Bearer " + token());
  i.headers.emplace_back("wtmesh-agent-instance", "agentaaaaaaaaaaaaaaa");
  ASSERT_EQ(connect(i).status, 200);
  register_host(*sessions_[0], 1, "app.localhost");
  TunnelServiceConfig other_config;
  other_config.session.domain = "localhost";
  other_config.edge_id = "edge-t-w1";
  other_config.returned = returned;
  TunnelService other(other_config, *routes_, {});
  service_->drain();
  other.drain();
  EXPECT_EQ(service_->sessions_to_move(), 1u);
  EXPECT_EQ(other.accept(i).status, 503) << "the other worker refuses it: draining";
  EXPECT_EQ(service_->sessions_to_move(), 0u) << "the worker holding the session no longer waits for it";
}

// The edge's session capacity counts the sessions of every worker (one SubjectLedger).
TEST_F(TunnelServiceTest, TheSessionCapacityIsTheEdgesNotAWorkers) {
  auto ledger = std::make_shared<SubjectLedger>();
  tweak_ = [ledger](TunnelServiceConfig& c) { c.subjects = ledger; };
  make(/*max_sessions=*/2);
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  TunnelServiceConfig other_config;
  other_config.session.domain = "localhost";
  other_config.edge_id = "edge-t-w1";
  other_config.wall_clock = [this] { return wall_; };
  other_config.max_sessions = 2;
  other_config.subjects = ledger;
  tunnel::VerifierKeySet keys;
  keys.add_pem(key_.public_pem());
  TunnelService other(other_config, *routes_, keys);
  const wt::Accept second = other.accept(info("Bearer " + token()));
  ASSERT_EQ(second.status, 200);
  test::FakeSession fake;
  fake.handler = second.handler;
  second.handler->on_attached(fake);
  EXPECT_EQ(connect(info("Bearer " + token())).status, 503) << "two sessions on the edge, one on each worker";
  EXPECT_EQ(ledger->total_sessions(), 2u);
  fake.peer_closes(0, "bye");
  EXPECT_EQ(connect(info("Bearer " + token())).status, 200) << "the other worker's session ended";
}

TEST(ReturnedAgents, IsBoundedAndAFullListAddsNoMore) {
  ReturnedAgents r;
  for (size_t i = 0; i < ReturnedAgents::kMax; ++i) EXPECT_TRUE(r.add("agent" + std::to_string(i)));
  EXPECT_FALSE(r.add("agent0")) << "already listed";
  EXPECT_FALSE(r.add("one-too-many"));
  EXPECT_EQ(r.size(), ReturnedAgents::kMax);
  EXPECT_FALSE(r.contains("one-too-many"));
  EXPECT_TRUE(r.contains("agent4095"));
}

}  // namespace
}  // namespace wtmesh::edge
