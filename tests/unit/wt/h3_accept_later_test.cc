// WebTransport over HTTP/3: an acceptor that decides later (Accept::later(), H3Server::answer()), as
// the edge does when a relayed session's route is held by another worker. Checked: the answer sends
// the response then, with the streams and datagrams that came meanwhile; a refusal; a request reset
// or timed out while waiting (answer() then does nothing); the waiting request counts against
// max_sessions.
#include <gtest/gtest.h>

#include "wt_test_util.h"

namespace wtmesh::wt::test {
namespace {

using namespace std::chrono_literals;

constexpr StreamId kFirstRequest = 0;

TEST(WtH3AcceptLater, TheAnswerOpensTheSessionWithWhatCameMeanwhile) {
  Harness h;
  h.start();
  Recorder rec;
  H3Session* s = h.connect(rec, "/later");
  ASSERT_EQ(h.infos.size(), 1u);
  EXPECT_EQ(h.infos[0].request_id, kFirstRequest) << "the acceptor learns which request to answer";
  EXPECT_EQ(h.server->undecided_count(), 1u);
  EXPECT_FALSE(rec.ready) << "no response before the answer";
  EXPECT_EQ(s->state(), H3Session::State::kRequested);
  EXPECT_EQ(h.server->next_deadline(), h.now + 5s) << "a waiting request has a deadline";
  // A peer racing ahead of the response (as browsers may): its stream and datagram wait.
  const auto early = h.client_conn.open_wt_stream(kFirstRequest, true);
  ASSERT_TRUE(early);
  h.client_conn.wt_write(*early, bytes("early"), false);
  ASSERT_TRUE(h.client_conn.send_datagram(kFirstRequest, bytes("dgram")));
  h.run();
  EXPECT_EQ(h.server->buffered_stream_count(), 1u);

  ASSERT_TRUE(h.server->answer(kFirstRequest, Accept{200, &h.server_rec, {{"wt-protocol", "\"y\""}}}));
  h.run();
  EXPECT_TRUE(rec.ready);
  ASSERT_TRUE(h.server_rec.ready);
  EXPECT_EQ(h.server->undecided_count(), 0u);
  EXPECT_EQ(h.server_rec.data[*early], "early");
  EXPECT_EQ(h.server_rec.datagrams, std::vector<std::string>{"dgram"});
  EXPECT_FALSE(h.server->answer(kFirstRequest, Accept{200, &h.server_rec, {}})) << "answered once";
  // The session works both ways from here.
  const auto bidi = s->open_bidi_stream();
  ASSERT_TRUE(bidi);
  s->write(*bidi, bytes("after"), true);
  h.run();
  EXPECT_EQ(h.server_rec.data[*bidi], "after");
}

TEST(WtH3AcceptLater, ARefusalLaterIsAFinalStatus) {
  Harness h;
  h.start();
  Recorder rec;
  h.connect(rec, "/later");
  ASSERT_TRUE(h.server->answer(kFirstRequest, Accept{401, nullptr, {{"www-authenticate", "Basic"}}}));
  h.run();
  ASSERT_TRUE(rec.refused);
  EXPECT_EQ(rec.refused->status, 401);
  ASSERT_TRUE(find_header(rec.refused->headers, "www-authenticate"));
  // Put off twice, or accepted without a handler: the application erred, 500.
  Recorder again;
  h.connect(again, "/later");
  ASSERT_TRUE(h.server->answer(4, Accept::later()));
  h.run();
  ASSERT_TRUE(again.refused);
  EXPECT_EQ(again.refused->status, 500);
}

TEST(WtH3AcceptLater, ARequestResetOrTimedOutWhileWaitingIsNotAnswered) {
  ServerConfig config;
  config.max_sessions = 2;
  ClientConfig client_config;
  client_config.max_sessions = 2;
  Harness h(config, client_config);
  h.start();
  Recorder gone;
  H3Session* s = h.connect(gone, "/later");
  s->close(0, "");  // the client gives up before the answer
  h.run();
  EXPECT_EQ(h.server->undecided_count(), 0u);
  EXPECT_FALSE(h.server->answer(kFirstRequest, Accept{200, &h.server_rec, {}}));
  h.run();
  EXPECT_FALSE(h.server_rec.ready) << "the handler never hears of it";

  Recorder slow;
  h.connect(slow, "/later");
  EXPECT_EQ(h.server->undecided_count(), 1u);
  h.now += 5s;
  h.server->on_tick(h.now);
  h.run();
  ASSERT_TRUE(slow.closed.has_value());
  EXPECT_NE(slow.closed->second.find("0x10b"), std::string::npos) << "H3_REQUEST_REJECTED";
  EXPECT_FALSE(h.server->answer(4, Accept{200, &h.server_rec, {}}));
}

TEST(WtH3AcceptLater, AWaitingRequestCountsAgainstMaxSessions) {
  ServerConfig config;
  config.max_sessions = 1;
  ClientConfig client_config;
  client_config.max_sessions = 2;
  Harness h(config, client_config);
  h.start();
  Recorder first, second;
  h.connect(first, "/later");
  h.connect(second, "/record");
  ASSERT_TRUE(second.closed.has_value()) << "one session, still undecided, is the cap";
  EXPECT_NE(second.closed->second.find("0x10b"), std::string::npos);
  ASSERT_TRUE(h.server->answer(kFirstRequest, Accept{200, &h.server_rec, {}}));
  h.run();
  EXPECT_TRUE(first.ready);
}

}  // namespace
}  // namespace wtmesh::wt::test
