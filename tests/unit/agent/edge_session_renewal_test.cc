// EdgeSession's token renewal (docs/protocol.md §3.3) on an in-memory session: RENEW frames at the
// set interval with freshly minted tokens, the next one only after a RENEWED that accepted, none after
// a refusal, and a mint that fails reported instead of sent.
#include <gtest/gtest.h>

#include <functional>

#include "../../support/run_until.h"
#include "agent/edge_session.h"
#include "fake_session.h"
#include "local_http_server.h"

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using namespace std::chrono_literals;

class Renewal : public ::testing::Test {
 protected:
  Renewal() : pool_(io_, {asio::ip::make_address("127.0.0.1"), server_.port()}) {}

  void make(std::function<std::string()> mint, std::chrono::milliseconds every = 50ms) {
    EdgeSession::Callbacks cb;
    cb.on_renewed = [this](bool ok, const std::string& s) { renewed_.emplace_back(ok, s); };
    ts_ = std::make_unique<EdgeSession>(io_, std::vector<TunnelRoute>{{{7, "app.localhost", "http"}, &pool_}},
                                        ControlOptions{}, ExchangeLimits{}, std::move(cb));
    ts_->set_renewal(TokenRenewal{std::move(mint), every});
    ts_->on_attached(fake_);
    ts_->on_ready();
    control_ = fake_.streams.begin()->first;
  }
  // The RENEW frames the agent wrote so far.
  std::vector<tunnel::Renew> renews() {
    const auto& out = fake_.streams[control_].out;
    tunnel::ControlReader r;
    std::vector<tunnel::ControlFrame> frames;
    EXPECT_EQ(r.feed(std::span<const uint8_t>(out).subspan(1), frames), tunnel::WireError::kNone);
    std::vector<tunnel::Renew> got;
    for (const auto& f : frames) {
      const tunnel::ControlDecode d = tunnel::decode(f);
      if (const auto* m = d.get<tunnel::Renew>()) got.push_back(*m);
    }
    return got;
  }
  void answer(const tunnel::Renewed& r) {
    const auto bytes = tunnel::encode(r);
    ts_->on_stream_data(control_, bytes, false);
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 5s) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler);
  }

  testing::LocalHttpServer server_;
  asio::io_context io_;
  UpstreamPool pool_;
  testing::FakeSession fake_;
  std::unique_ptr<EdgeSession> ts_;
  wt::StreamId control_ = 0;
  std::vector<std::pair<bool, std::string>> renewed_;
};

TEST_F(Renewal, RenewsAfterEachAcceptanceAndStopsAfterARefusal) {
  int minted = 0;
  make([&] { return "token-" + std::to_string(++minted); });
  EXPECT_TRUE(renews().empty()) << "nothing before the interval";
  ASSERT_TRUE(run_until([&] { return renews().size() == 1; }));
  EXPECT_EQ(renews()[0].seq, 1u);
  EXPECT_EQ(renews()[0].token, "token-1");
  const uint64_t exp = static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
          .count() +
      60);
  answer(tunnel::Renewed{1, exp, ""});
  ASSERT_EQ(renewed_.size(), 1u);
  EXPECT_TRUE(renewed_[0].first);
  EXPECT_NE(renewed_[0].second.find("renewed (1)"), std::string::npos) << renewed_[0].second;
  EXPECT_EQ(ts_->renewals(), 1u);
  ASSERT_TRUE(run_until([&] { return renews().size() == 2; }));
  EXPECT_EQ(renews()[1].seq, 2u);
  EXPECT_EQ(renews()[1].token, "token-2");
  answer(tunnel::Renewed{2, 0, "invalid token: revoked: credential x was revoked"});
  ASSERT_EQ(renewed_.size(), 2u);
  EXPECT_FALSE(renewed_[1].first);
  EXPECT_NE(renewed_[1].second.find("revoked"), std::string::npos) << renewed_[1].second;
  EXPECT_FALSE(run_until([&] { return renews().size() > 2; }, 300ms)) << "no RENEW after a refusal";
  EXPECT_FALSE(fake_.closed.has_value()) << "a refused renewal does not end the session itself";
}

TEST_F(Renewal, AMintThatFailsIsReportedNotSent) {
  make([]() -> std::string { throw std::runtime_error("the credential c1 has expired"); });
  ASSERT_TRUE(run_until([&] { return !renewed_.empty(); }));
  EXPECT_FALSE(renewed_[0].first);
  EXPECT_NE(renewed_[0].second.find("has expired"), std::string::npos);
  EXPECT_TRUE(renews().empty());
}

}  // namespace
}  // namespace wtmesh::agent
