// Sessions opened with a credential's session token (docs/protocol.md §3.3, §6.1): accepted with the
// grant's scope, the replay cache, the edge's maximum lifetime, RENEW moving the session's expiry
// (and every refusal leaving it where it was), and revocation closing live sessions (code 5) and
// refusing new ones.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../../support/temp_dir.h"
#include "edge/tunnel_service.h"
#include "tunnel/credential.h"
#include "tunnel/revocation.h"
#include "tunnel_service_fixture.h"

namespace wtmesh::edge {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class CredentialSessionTest : public test::TunnelServiceFixture<LocalRouteTable> {
 protected:
  void SetUp() override {
    revocation_file_ = tunnel::RevocationList::file_in(dir_.path());
    make();
  }
  tunnel::Credential issue(const std::string& name = "app") {
    return tunnel::Credential::issue(key_, name, {name + ".localhost"}, {}, 24h, wall_);
  }
  // Opens the control stream of session `i` (kind 0x00 and a REGISTER of app.localhost).
  void open_control(size_t i) { register_host(*sessions_[i], 1, "app.localhost"); }
  void send_renew(size_t i, uint64_t seq, const std::string& token) {
    auto f = tunnel::encode(tunnel::Renew{seq, token});
    sessions_[i]->handler->on_stream_data(0, f, false);
  }
  // The RENEWED answers session `i` got, in order.
  std::vector<tunnel::Renewed> renewed(size_t i) {
    std::vector<tunnel::Renewed> out;
    for (const auto& f : control_frames(*sessions_[i])) {
      auto d = tunnel::decode(f);
      if (const auto* r = d.get<tunnel::Renewed>()) out.push_back(*r);
    }
    return out;
  }
  // Moves both clocks (the edge computes steady deadlines from wall-clock expiries).
  void advance(std::chrono::seconds d) {
    clock_.t += d;
    wall_ += d;
  }
  // Keeps the heartbeat fed while time passes, then ticks.
  void pass(std::chrono::seconds d) {
    for (auto left = d; left > 0s; left -= std::min(left, std::chrono::seconds(5))) {
      advance(std::min(left, std::chrono::seconds(5)));
      for (auto& s : sessions_) {
        if (s->closed) continue;
        auto f = tunnel::encode(tunnel::Pong{1});
        s->handler->on_stream_data(0, f, false);
      }
      service_->on_tick(clock_.t);
    }
  }
  static int64_t unix_s(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  }

  wtmesh::test::TempDir dir_;
};

TEST_F(CredentialSessionTest, AcceptedWithTheGrantsScopeAndNeverTwice) {
  const auto cred = issue();
  const std::string token = cred.mint(60s, wall_);
  ASSERT_EQ(connect(info("Bearer " + token)).status, 200);
  AgentSession* s = service_->find_session(1);
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->claims().credential_id, cred.id());
  EXPECT_EQ(s->claims().hosts, std::vector<std::string>{"app.localhost"});
  EXPECT_EQ(s->token_deadline(), clock_.t + 60s + tunnel::kDefaultLeeway);
  EXPECT_EQ(service_->replay_entries(), 1u);
  const wt::Accept again = connect(info("Bearer " + token));
  EXPECT_EQ(again.status, 401) << "the same session token twice";
  EXPECT_NE(header(again, "wtmesh-error").find("invalid token: replayed"), std::string::npos)
      << header(again, "wtmesh-error");
}

TEST_F(CredentialSessionTest, LifetimeOverTheEdgesMaximumIs401WithTheReason) {
  session_token_ttl_ = 10s;
  make();
  const auto cred = issue();
  const wt::Accept a = connect(info("Bearer " + cred.mint(60s, wall_)));
  EXPECT_EQ(a.status, 401);
  EXPECT_NE(header(a, "wtmesh-error").find("over this edge's maximum of 10 s"), std::string::npos)
      << header(a, "wtmesh-error");
  EXPECT_EQ(connect(info("Bearer " + cred.mint(10s, wall_))).status, 200);
}

TEST_F(CredentialSessionTest, RenewMovesTheExpiry) {
  const auto cred = issue();
  ASSERT_EQ(connect(info("Bearer " + cred.mint(60s, wall_))).status, 200);
  open_control(0);
  // Three renewals, 40 s apart: the session lives 150 s on 60 s tokens.
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    pass(40s);
    ASSERT_FALSE(sessions_[0]->closed) << "renewal " << seq;
    send_renew(0, seq, cred.mint(60s, wall_));
    const auto r = renewed(0);
    ASSERT_EQ(r.size(), seq);
    EXPECT_EQ(r.back().seq, seq);
    EXPECT_TRUE(r.back().error.empty()) << r.back().error;
    EXPECT_EQ(r.back().expires, static_cast<uint64_t>(unix_s(wall_ + 60s)));
    EXPECT_EQ(service_->find_session(1)->token_deadline(), clock_.t + 60s + tunnel::kDefaultLeeway);
  }
  pass(85s);
  EXPECT_FALSE(sessions_[0]->closed) << "inside the last token's exp + leeway";
  pass(10s);
  EXPECT_EQ(sessions_[0]->close_code, tunnel::kCloseTokenExpired);
}

TEST_F(CredentialSessionTest, BadRenewalsAreRefusedAndTheSessionEndsAtTheOldExpiry) {
  const auto cred = issue();
  const auto other = issue("other");
  ASSERT_EQ(connect(info("Bearer " + cred.mint(60s, wall_))).status, 200);
  open_control(0);
  auto deadline = service_->find_session(1)->token_deadline();
  auto expect_refused = [&](uint64_t seq, const std::string& token, const std::string& want) {
    send_renew(0, seq, token);
    const auto r = renewed(0);
    ASSERT_FALSE(r.empty());
    EXPECT_EQ(r.back().seq, seq);
    EXPECT_EQ(r.back().expires, 0u);
    EXPECT_NE(r.back().error.find(want), std::string::npos) << r.back().error;
    EXPECT_EQ(service_->find_session(1)->token_deadline(), deadline);
  };
  pass(10s);
  expect_refused(1, other.mint(60s, wall_), "another credential");
  pass(3s);
  expect_refused(2, token(), "not a session token");
  pass(3s);
  expect_refused(3, "garbage", "not a session token");
  pass(3s);
  std::string broken = cred.mint(60s, wall_);
  broken.back() = broken.back() == 'A' ? 'B' : 'A';
  expect_refused(4, broken, "invalid token: bad_signature");
  pass(3s);
  const std::string good = cred.mint(60s, wall_);
  send_renew(0, 5, good);
  EXPECT_TRUE(renewed(0).back().error.empty());
  EXPECT_NE(service_->find_session(1)->token_deadline(), deadline);
  deadline = service_->find_session(1)->token_deadline();
  expect_refused(6, cred.mint(60s, wall_), "at most every 2 s");
  pass(3s);
  expect_refused(7, good, "replayed");
  EXPECT_FALSE(sessions_[0]->closed) << "a refused RENEW does not end the session";
}

TEST_F(CredentialSessionTest, PlainTokenSessionsDoNotRenew) {
  ASSERT_EQ(connect(info("Bearer " + token())).status, 200);
  open_control(0);
  send_renew(0, 1, issue().mint(60s, wall_));
  ASSERT_EQ(renewed(0).size(), 1u);
  EXPECT_NE(renewed(0)[0].error.find("plain token"), std::string::npos);
}

TEST_F(CredentialSessionTest, RevocationClosesLiveSessionsAndRefusesNewOnes) {
  const auto cred = issue();
  const auto keep = issue("keep");
  ASSERT_EQ(connect(info("Bearer " + cred.mint(60s, wall_))).status, 200);
  ASSERT_EQ(connect(info("Bearer " + keep.mint(60s, wall_))).status, 200);
  open_control(0);
  register_host(*sessions_[1], 1, "keep.localhost");
  pass(2s);
  ASSERT_TRUE(tunnel::RevocationList::add(*revocation_file_, cred.id()));
  pass(TunnelService::kRevocationCheck);
  EXPECT_EQ(sessions_[0]->close_code, tunnel::kCloseCredentialRevoked);
  EXPECT_FALSE(sessions_[1]->closed) << "another credential's session lives on";
  EXPECT_TRUE(service_->revoked().contains(cred.id()));
  const wt::Accept a = connect(info("Bearer " + cred.mint(60s, wall_)));
  EXPECT_EQ(a.status, 401);
  EXPECT_NE(header(a, "wtmesh-error").find("invalid token: revoked"), std::string::npos)
      << header(a, "wtmesh-error");
  // A renewal of the other credential's session still works.
  send_renew(1, 1, keep.mint(60s, wall_));
  EXPECT_TRUE(renewed(1).back().error.empty());
}

// Every worker of an edge has its own TunnelService watching the file: a session that reaches a
// worker whose periodic check has not come round yet must still be refused.
TEST_F(CredentialSessionTest, ANewSessionSeesARevocationAtOnceAndTheLiveOnesCloseAtTheNextTick) {
  const auto cred = issue();
  ASSERT_EQ(connect(info("Bearer " + cred.mint(60s, wall_))).status, 200);
  open_control(0);
  pass(2s);  // the periodic check has just run
  ASSERT_TRUE(tunnel::RevocationList::add(*revocation_file_, cred.id()));
  const wt::Accept a = connect(info("Bearer " + cred.mint(60s, wall_)));
  EXPECT_EQ(a.status, 401) << "no tick between the revocation and the session";
  EXPECT_NE(header(a, "wtmesh-error").find("invalid token: revoked"), std::string::npos)
      << header(a, "wtmesh-error");
  EXPECT_FALSE(sessions_[0]->closed) << "not closed from inside another session's accept";
  advance(std::chrono::seconds(1));  // less than kRevocationCheck
  service_->on_tick(clock_.t);
  EXPECT_EQ(sessions_[0]->close_code, tunnel::kCloseCredentialRevoked);
}

TEST_F(CredentialSessionTest, TheReplayCacheIsBounded) {
  max_replay_entries_ = 3;
  make();
  const auto cred = issue();
  for (size_t i = 0; i < 3; ++i) ASSERT_EQ(connect(info("Bearer " + cred.mint(10s, wall_))).status, 200);
  EXPECT_EQ(service_->replay_entries(), 3u);
  const wt::Accept full = connect(info("Bearer " + cred.mint(10s, wall_)));
  EXPECT_EQ(full.status, 401);
  EXPECT_NE(header(full, "wtmesh-error").find("replay cache is full"), std::string::npos)
      << header(full, "wtmesh-error");
  // Once those tokens are past exp + leeway their entries make room.
  advance(10s + tunnel::kDefaultLeeway);
  EXPECT_EQ(connect(info("Bearer " + cred.mint(10s, wall_))).status, 200);
  EXPECT_EQ(service_->replay_entries(), 1u);
}

}  // namespace
}  // namespace wtmesh::edge
