// Public HTTP/3 requests: our h3 client against the edge's H3Server + H3Requests over a MemoryPair,
// the agent played by a FakeDirectory.
#include <gtest/gtest.h>

#include <string>

#include "h3_requests_fixture.h"

namespace wtmesh::edge::test {
namespace {

TEST_F(H3RequestsTest, GetIsForwardedAndAnswered) {
  const StreamId id = request("GET", "/hello?x=1", "App.Localhost:4433",
                              {{"user-agent", "t"}, {"cookie", "a=1"}, {"cookie", "b=2"}});
  run();
  ASSERT_EQ(dir_.streams.size(), 1u);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(rh.method, "GET");
  EXPECT_EQ(rh.target, "/hello?x=1");
  EXPECT_EQ(rh.authority, "App.Localhost:4433");
  EXPECT_FALSE(rh.has_body);
  EXPECT_EQ(header_value(rh.headers, "user-agent"), "t");
  EXPECT_EQ(header_value(rh.headers, "cookie"), "a=1; b=2") << "RFC 9114 §4.2.1: crumbs joined";
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-proto"), "https");
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-for"), "192.0.2.1");

  agent_answers(head(200, 5, true, {{"Content-Type", "text/plain"}, {"Connection", "close"}}), "hello", true);
  run();
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.field("content-type"), "text/plain") << "names lower-cased";
  EXPECT_EQ(r.field("content-length"), "5");
  EXPECT_EQ(r.field("connection"), "") << "connection-specific fields are malformed in HTTP/3";
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.fin);
  EXPECT_FALSE(r.reset.has_value());
  EXPECT_TRUE(stream().released);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200);
  EXPECT_EQ(logs_[0].version, "HTTP/3");
  EXPECT_EQ(logs_[0].bytes, 5u);
  EXPECT_EQ(requests_->stream_count(), 0u) << "closed streams are forgotten";
  EXPECT_EQ(requests_->requests_completed(), 1u);
}

TEST_F(H3RequestsTest, RequestBodyStreamsWithBackpressure) {
  dir_.capacity = 0;  // the agent takes nothing yet (the head waits too)
  const StreamId id = request("POST", "/up", "app.localhost", {{"content-length", "200000"}}, false);
  const std::string payload(200'000, 'p');
  size_t sent = send(id, payload, true);
  run();
  EXPECT_LT(sent, payload.size()) << "the edge returns no credit for bytes the agent did not take";
  for (int i = 0; i < 100 && (sent < payload.size() || !stream().fin); ++i) {
    stream().capacity += 16 * 1024;
    stream().events->on_request_writable();
    run();
    if (sent < payload.size()) sent += send(id, std::string_view(payload).substr(sent), true);
    run();
  }
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_TRUE(rh.has_body);
  EXPECT_EQ(rh.content_length, 200'000u);
  EXPECT_EQ(body, payload);
  EXPECT_TRUE(stream().fin);
}

// The client's trailing HEADERS (our h3 client's send_trailers) end a framed request body (§4.1).
TEST_F(H3RequestsTest, RequestTrailersGoFramedWithTheFeature) {
  dir_.request_trailers = true;
  const StreamId id = request("POST", "/up", "app.localhost", {}, false);
  send(id, "abc", false);
  run();
  ASSERT_TRUE(cc_->send_trailers(id, {{"x-checksum", "abc"}}));
  run();
  const auto req = framed_request();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->data, "abc");
  EXPECT_EQ(req->trailers, (tunnel::HeaderPairs{{"x-checksum", "abc"}}));
  EXPECT_TRUE(stream().fin);
}

TEST_F(H3RequestsTest, ResponseBodyCreditFollowsTheSendBuffer) {
  MemoryPairConfig pc;
  pc.stream_send_buffer = 16 * 1024;
  make({}, pc);
  const StreamId id = request("GET", "/big", "app.localhost");
  run();
  const std::string payload(100'000, 'x');
  agent_answers(head(200, payload.size()), payload, true);
  EXPECT_LT(stream().consumed, 40'000u) << "credit only for what the stream's send buffer took";
  run();
  EXPECT_EQ(view_.r[id].body, payload);
  EXPECT_TRUE(view_.r[id].fin);
  EXPECT_GE(stream().consumed, payload.size());
}

TEST_F(H3RequestsTest, ChunkedResponseOfUnknownLengthEndsWithFin) {
  const StreamId id = request("GET", "/", "app.localhost");
  run();
  agent_answers(head(200, std::nullopt), "part1", false);
  run();
  EXPECT_EQ(view_.r[id].body, "part1");
  EXPECT_FALSE(view_.r[id].fin);
  EXPECT_EQ(view_.r[id].field("content-length"), "");
  stream().events->on_response_data(bytes("part2"), true);
  run();
  EXPECT_EQ(view_.r[id].body, "part1part2");
  EXPECT_TRUE(view_.r[id].fin);
}

// Session feature `trailers` (docs/protocol.md §4.1): a framed body's trailer section becomes a
// trailing HEADERS with FIN, after all the DATA.
TEST_F(H3RequestsTest, FramedBodyTrailersBecomeATrailingHeaders) {
  const StreamId id = request("POST", "/wtmesh.test.Echo/Unary", "app.localhost", {{"te", "trailers"}}, true);
  run();
  const auto wire = framed_answer({103}, head(200, std::nullopt, true, {{"content-type", "application/grpc"}}),
                                  "msg", std::nullopt);
  stream().events->on_response_data(wire, false);
  run();
  EXPECT_EQ(view_.r[id].status(), 200);
  EXPECT_EQ(view_.r[id].body, "msg");
  EXPECT_FALSE(view_.r[id].fin);
  std::vector<uint8_t> end;
  ASSERT_TRUE(tunnel::append_body_end(end, {{"grpc-status", "7"}, {"grpc-message", "denied"}}));
  stream().events->on_response_data(end, true);
  run();
  EXPECT_TRUE(view_.r[id].fin);
  ASSERT_NE(h3::find_header(view_.r[id].trailers, "grpc-status"), nullptr);
  EXPECT_EQ(*h3::find_header(view_.r[id].trailers, "grpc-status"), "7");
  EXPECT_EQ(*h3::find_header(view_.r[id].trailers, "grpc-message"), "denied");
  EXPECT_EQ(view_.r[id].field("grpc-status"), "") << "not in the head";
  EXPECT_EQ(stream().consumed, wire.size() + end.size()) << "framing at once, the data once sent: all credited";
}

TEST_F(H3RequestsTest, AgentGoneMidBodyResetsTheStream) {
  const StreamId id = request("GET", "/", "app.localhost");
  run();
  agent_answers(head(200, 1000), std::string(100, 'x'), false);
  run();
  stream().events->on_stream_aborted(std::nullopt, "session closed");
  run();
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body.size(), 100u);
  EXPECT_FALSE(r.fin) << "a cut response never ends cleanly";
  EXPECT_EQ(r.reset, h3::kH3InternalError);
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3RequestsTest, ClientResetCancelsTheExchange) {
  const StreamId id = request("POST", "/slow", "app.localhost", {}, false);
  send(id, "abc", false);
  run();
  ASSERT_EQ(dir_.streams.size(), 1u);
  cc_->reset_request(id, h3::kH3RequestCancelled);
  run();
  EXPECT_TRUE(stream().cancelled.has_value());
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 499);
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3RequestsTest, ResponseBeforeTheBodyEndsStopsTheBody) {
  const StreamId id = request("POST", "/early", "app.localhost", {}, false);
  send(id, "first", false);
  run();
  agent_answers(head(413, 4), "nope", true);
  run();
  const auto& r = view_.r[id];
  EXPECT_EQ(r.status(), 413);
  EXPECT_EQ(r.body, "nope");
  EXPECT_TRUE(r.fin);
  EXPECT_FALSE(r.reset.has_value()) << "STOP_SENDING(H3_NO_ERROR), not an error for the client";
  EXPECT_EQ(send(id, "more", false), 0u) << "the client's request direction was stopped";
  run();
  EXPECT_EQ(requests_->stream_count(), 0u);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 413);
}

TEST_F(H3RequestsTest, ContinueIsSentWhenAsked) {
  // (h3::Connection's client skips 1xx heads, so what is checked is that the request goes on.)
  const StreamId id = request("PUT", "/x", "app.localhost", {{"expect", "100-continue"}}, false);
  run();
  send(id, "body", true);
  run();
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "expect"), "<none>") << "the edge answers 100-continue itself";
  EXPECT_EQ(body, "body");
  EXPECT_TRUE(stream().fin);
}

TEST_F(H3RequestsTest, TheEdgeRefusesWhatTunnelsDoNotCarry) {
  const StreamId unknown = request("GET", "/", "nobody.localhost");
  const StreamId connect =
      cc_->send_request({{":method", "CONNECT"}, {":authority", "app.localhost:22"}}, false).value_or(0);
  const StreamId ext = request("CONNECT", "/chat", "app.localhost", {{":protocol", "chat"}}, false);
  run();
  EXPECT_EQ(view_.r[unknown].status(), 404);
  EXPECT_TRUE(view_.r[unknown].fin);
  EXPECT_EQ(view_.r[connect].status(), 405);
  EXPECT_EQ(view_.r[ext].status(), 501);
  EXPECT_TRUE(dir_.streams.empty()) << "nothing reached an agent";
  EXPECT_EQ(requests_->stream_count(), 0u) << "refused streams close (the body is stopped)";
}

TEST_F(H3RequestsTest, BodyBeyondTheCapResetsTheStream) {
  H3RequestsConfig cfg;
  cfg.max_buffered_body = 8 * 1024;
  make(cfg);
  dir_.capacity = 0;
  const StreamId id = request("POST", "/up", "app.localhost", {}, false);
  send(id, std::string(32 * 1024, 'z'), false);
  run();
  EXPECT_EQ(view_.r[id].reset, h3::kH3ExcessiveLoad);
  ASSERT_EQ(dir_.streams.size(), 1u);
  EXPECT_TRUE(stream().cancelled.has_value()) << "the agent's stream is cancelled too";
  EXPECT_EQ(requests_->stream_count(), 0u);
}

TEST_F(H3RequestsTest, LocalAnswersInARowSendGoaway) {
  H3RequestsConfig cfg;
  cfg.exchange.limits.max_local_answers = 3;
  make(cfg);
  for (int i = 0; i < 3; ++i) request("GET", "/", "nobody.localhost");
  run();
  EXPECT_TRUE(requests_->goaway_sent());
  ASSERT_EQ(view_.goaways.size(), 1u);
  const StreamId late = request("GET", "/", "app.localhost");
  run();
  EXPECT_EQ(view_.r[late].reset, h3::kH3RequestRejected) << "above the GOAWAY id: not processed";
  EXPECT_TRUE(dir_.streams.empty());
}

TEST_F(H3RequestsTest, ConnectionCloseCancelsExchanges) {
  request("GET", "/a", "app.localhost");
  request("GET", "/b", "app.localhost");
  run();
  ASSERT_EQ(dir_.streams.size(), 2u);
  cc_->close(h3::kH3NoError, "bye");
  run();
  for (const auto& [id, s] : dir_.streams) EXPECT_TRUE(s.cancelled.has_value() || s.released);
  EXPECT_EQ(requests_->stream_count(), 0u);
  EXPECT_EQ(logs_.size(), 2u);
}

// The edge drains: GOAWAY after the requests the client opened; the one under way finishes, a later
// one is refused with H3_REQUEST_REJECTED (the client may retry it on another edge).
TEST_F(H3RequestsTest, DrainGoawayLetsTheRequestUnderWayFinish) {
  const StreamId a = request("GET", "/slow", "app.localhost");
  run();
  ASSERT_EQ(dir_.streams.size(), 1u);
  requests_->goaway();
  run();
  ASSERT_EQ(view_.goaways.size(), 1u);
  EXPECT_EQ(view_.goaways[0], a + 4) << "every stream the client opened is below it";
  const StreamId late = request("GET", "/late", "app.localhost");
  run();
  EXPECT_EQ(view_.r[late].reset, h3::kH3RequestRejected);
  agent_answers(head(200, 2), "ok", true);
  run();
  EXPECT_EQ(view_.r[a].status(), 200);
  EXPECT_EQ(view_.r[a].body, "ok");
  EXPECT_TRUE(view_.r[a].fin);
  EXPECT_EQ(dir_.streams.size(), 1u);
}

}  // namespace
}  // namespace wtmesh::edge::test
