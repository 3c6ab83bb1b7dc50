// The public HTTP/2 codec against nghttp2's client session, in memory, over a FakeDirectory.
#include "edge/h2_connection.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "h2_connection_fixture.h"

namespace wtmesh::edge::test {
namespace {

// A raw frame (header + payload), sent straight to the edge after the test client's preface and
// SETTINGS exchange.
std::string raw_frame(uint8_t type, uint8_t flags, uint32_t id, std::string_view payload) {
  const auto b = [](uint64_t v) { return static_cast<char>(v & 0xff); };
  std::string f = {b(payload.size() >> 16),
                   b(payload.size() >> 8),
                   b(payload.size()),
                   b(type),
                   b(flags),
                   b(id >> 24),
                   b(id >> 16),
                   b(id >> 8),
                   b(id)};
  return f + std::string(payload);
}

TEST_F(H2ConnectionTest, GetIsForwardedAndAnswered) {
  const int32_t id = client_.request("GET", "/hello?x=1", "App.Localhost:8443",
                                     {{"user-agent", "t"}, {"cookie", "a=1"}, {"cookie", "b=2"}});
  pump();
  ASSERT_EQ(dir_.streams.size(), 1u);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_TRUE(stream().fin) << "END_STREAM on the HEADERS: FIN with the head";
  EXPECT_EQ(rh.tunnel_id, 7u);
  EXPECT_EQ(rh.method, "GET");
  EXPECT_EQ(rh.target, "/hello?x=1");
  EXPECT_EQ(rh.authority, "App.Localhost:8443");
  EXPECT_FALSE(rh.has_body);
  EXPECT_EQ(header_value(rh.headers, "user-agent"), "t");
  EXPECT_EQ(header_value(rh.headers, "cookie"), "a=1; b=2") << "RFC 9113 §8.2.3: crumbs joined";
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-for"), "192.0.2.1");
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-proto"), "https");

  agent_answers(
      head(200, 5, true, {{"Content-Type", "text/plain"}, {"Connection", "close"}, {"Keep-Alive", "x"}}),
      "hello", true);
  EXPECT_GT(wakes_, 0);
  const size_t head_len = tunnel::encode_response_head(head(200, 5, true, {})).size();
  EXPECT_GE(stream().consumed, head_len);
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.field("content-type"), "text/plain") << "names lower-cased";
  EXPECT_EQ(r.field("content-length"), "5");
  EXPECT_EQ(r.field("connection"), "") << "hop-by-hop fields never reach an HTTP/2 client";
  EXPECT_EQ(r.field("keep-alive"), "");
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.ended);
  EXPECT_TRUE(stream().released);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 200);
  EXPECT_EQ(logs_[0].version, "HTTP/2");
  EXPECT_EQ(logs_[0].bytes, 5u);
  EXPECT_EQ(conn_->stream_count(), 0u) << "closed streams are forgotten";
}

TEST_F(H2ConnectionTest, ResponseCreditReturnsOnlyOnceTheClientTookTheBytes) {
  client_.request("GET", "/big", "app.localhost");
  pump();
  const std::string payload(20'000, 'x');
  client_reads_ = false;
  agent_answers(head(200, payload.size()), payload, true);
  const size_t after_head = stream().consumed;
  EXPECT_LT(after_head, 1000u) << "body credit is held while the client has not read";
  client_reads_ = true;
  pump();
  EXPECT_EQ(stream().consumed, after_head + payload.size());
  EXPECT_EQ(client_.results[1].body, payload);
}

TEST_F(H2ConnectionTest, AgentGoneMidBodyResetsTheStream) {
  const int32_t id = client_.request("GET", "/", "app.localhost");
  pump();
  agent_answers(head(200, 1000), std::string(100, 'x'), false);
  pump();
  stream().events->on_stream_aborted(std::nullopt, "session closed");
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body.size(), 100u);
  EXPECT_FALSE(r.ended) << "a cut response never carries END_STREAM";
  EXPECT_TRUE(r.closed);
  EXPECT_EQ(r.close_code, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR));
  EXPECT_FALSE(conn_->finished()) << "only the stream ends, not the connection";
}

TEST_F(H2ConnectionTest, AgentSendingMoreThanContentLengthStillEndsTheResponse) {
  const int32_t id = client_.request("GET", "/", "app.localhost");
  pump();
  agent_answers(head(200, 5), "helloEXTRA", false);
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.body, "hello");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.close_code, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
}

TEST_F(H2ConnectionTest, StreamsRunConcurrently) {
  const int32_t a = client_.request("GET", "/a", "app.localhost");
  const int32_t b = client_.request("GET", "/b", "app.localhost");
  pump();
  ASSERT_EQ(dir_.streams.size(), 2u);
  // Answer the second first.
  auto first = dir_.streams.begin();
  auto second = std::next(first);
  auto answer = [](FakeDirectory::Stream& s, std::string_view text) {
    tunnel::ResponseHead h;
    h.status = 200;
    h.has_body = true;
    h.content_length = text.size();
    auto bytes = tunnel::encode_response_head(h);
    bytes.insert(bytes.end(), text.begin(), text.end());
    s.events->on_response_data(bytes, true);
  };
  answer(second->second, "B");
  pump();
  EXPECT_EQ(client_.results[b].body, "B");
  EXPECT_FALSE(client_.results[a].ended);
  answer(first->second, "A");
  pump();
  EXPECT_EQ(client_.results[a].body, "A");
  EXPECT_EQ(conn_->requests_completed(), 2u);
}

TEST_F(H2ConnectionTest, UnknownHostGets404AndTheConnectionGoesOn) {
  const int32_t id = client_.request("GET", "/", "nope.localhost");
  pump();
  EXPECT_EQ(client_.results[id].status(), 404);
  EXPECT_NE(client_.results[id].body.find("404"), std::string::npos);
  EXPECT_EQ(client_.results[id].field("content-type"), "text/html; charset=utf-8");
  EXPECT_FALSE(conn_->finished());
  const int32_t ok = client_.request("GET", "/", "app.localhost");
  pump();
  agent_answers(head(204, std::nullopt, false), "", true);
  pump();
  EXPECT_EQ(client_.results[ok].status(), 204);
  EXPECT_TRUE(client_.results[ok].ended);
}

TEST_F(H2ConnectionTest, RequestBodyIsForwardedWithItsEnd) {
  const int32_t id =
      client_.request("POST", "/up", "app.localhost", {{"content-length", "11"}}, "hello world");
  pump();
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(rh.method, "POST");
  EXPECT_TRUE(rh.has_body);
  EXPECT_EQ(rh.content_length, std::optional<uint64_t>(11));
  EXPECT_EQ(body, "hello world");
  EXPECT_TRUE(stream().fin);
  agent_answers(head(201, 0, false), "", true);
  pump();
  EXPECT_EQ(client_.results[id].status(), 201);
}

// Request trailers (§4.1): with the session feature the trailing HEADERS ends a framed body. Its fields
// count against the same header-bytes bound as the head: what does not fit is dropped.
TEST_F(H2ConnectionTest, RequestTrailersGoFramedWithinTheHeaderBound) {
  H2Config cfg;
  cfg.max_header_bytes = 4096;
  make(cfg);
  dir_.request_trailers = true;
  const std::string big(4000, 'v');
  client_.request("POST", "/up", "app.localhost", {}, "hello", {{"x-checksum", "abc"}, {"x-big", big}});
  pump();
  const auto req = framed_request();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->data, "hello");
  EXPECT_EQ(req->trailers, (tunnel::HeaderPairs{{"x-checksum", "abc"}})) << "x-big is over the bound";
  EXPECT_TRUE(stream().fin);
}

TEST_F(H2ConnectionTest, ExpectContinueGetsA100BeforeTheFinalResponse) {
  const int32_t id = client_.request("POST", "/up", "app.localhost",
                                     {{"expect", "100-continue"}, {"content-length", "2"}}, "hi");
  pump();
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "expect"), "<none>")
      << "100-continue is answered by the edge, not forwarded";
  EXPECT_EQ(body, "hi");
  agent_answers(head(200, 2), "ok", true);
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.informational, std::vector<int>{100});
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body, "ok");
}

// Session feature `trailers` (docs/protocol.md §4.1): a 103 becomes an interim HEADERS, the framed
// body's trailer section a trailing HEADERS with END_STREAM after the DATA.
TEST_F(H2ConnectionTest, InterimHeadsAndTrailersReachTheClient) {
  const int32_t id = client_.request("POST", "/svc/Call", "app.localhost", {{"te", "trailers"}}, "req");
  pump();
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "te"), "trailers");
  const auto wire = framed_answer({103}, head(200, std::nullopt, true, {{"content-type", "application/grpc"}}),
                                  "reply", tunnel::HeaderPairs{{"grpc-status", "0"}, {"Connection", "x"}});
  stream().events->on_response_data(wire, true);
  pump();
  const auto& r = client_.results[id];
  EXPECT_EQ(r.informational, std::vector<int>{103});
  EXPECT_EQ(r.status(), 200);
  EXPECT_EQ(r.body, "reply");
  EXPECT_TRUE(r.ended);
  EXPECT_EQ(r.field("grpc-status"), "0") << "the trailing HEADERS (the test client appends its fields)";
  EXPECT_EQ(r.field("connection"), "") << "hop-by-hop fields are not trailers either";
  EXPECT_EQ(r.fields.back().first, "grpc-status");
  EXPECT_EQ(stream().consumed, wire.size()) << "framing credited at once, the data once the client took it";
}

TEST_F(H2ConnectionTest, ConnectionWindowBoundsTheBodiesOfAllStreams) {
  dir_.capacity = 0;  // the agent takes nothing on any stream
  H2Config cfg;
  cfg.exchange.limits.h2_stream_window = 64 * 1024;
  cfg.exchange.limits.h2_connection_window = 96 * 1024;
  make(cfg);
  pump();  // the client sees the edge's SETTINGS and connection window first
  for (int i = 0; i < 6; ++i) client_.request("POST", "/up", "app.localhost", {}, std::string(60'000, 'c'));
  pump();
  EXPECT_GT(conn_->buffered_input(), 64u * 1024) << "more than one stream's window arrived";
  EXPECT_LE(conn_->buffered_input(), cfg.exchange.limits.h2_connection_window)
      << "six 60 KB bodies, each within its stream window, stop at the connection window";
}

TEST_F(H2ConnectionTest, SlowAgentHoldsTheRequestBodyWithinTheStreamWindow) {
  dir_.capacity = 1000;  // the agent's stream takes 1000 bytes, then nothing
  H2Config cfg;
  cfg.exchange.limits.h2_stream_window = 16 * 1024;
  cfg.exchange.limits.body_chunk = 4 * 1024;
  make(cfg);
  const std::string big(200'000, 'b');
  client_.request("POST", "/up", "app.localhost", {}, big);
  pump();
  // Before it has seen the edge's SETTINGS a client may send the protocol's initial 65,535 bytes.
  EXPECT_LE(conn_->buffered_input(), 65'535u + cfg.exchange.limits.body_chunk)
      << "the stream window bounds what waits here";
  const size_t first_flight = conn_->buffered_input();
  stream().events->on_request_writable();  // no capacity yet: nothing moves
  pump();
  EXPECT_EQ(conn_->buffered_input(), first_flight) << "no window went back while the agent took nothing";
  EXPECT_LT(pending_in_.size() + stream().written.size(), 40'000u)
      << "the client is held by flow control, not buffered";
  // The agent takes more: the window moves on and the whole body arrives.
  for (int i = 0; i < 100 && stream().written.size() < big.size(); ++i) {
    stream().capacity = 64 * 1024;
    stream().events->on_request_writable();
    pump();
  }
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(body.size(), big.size());
  EXPECT_TRUE(stream().fin);
}

TEST_F(H2ConnectionTest, ConnectIs405AndBadPathIs400WithoutReachingTheAgent) {
  const int32_t c = client_.request("CONNECT", "", "app.localhost:443");
  pump();
  EXPECT_EQ(client_.results[c].status(), 405);
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_FALSE(conn_->finished());
}

TEST_F(H2ConnectionTest, OversizedHeaderListIs431) {
  H2Config cfg;
  cfg.max_header_bytes = 4096;
  make(cfg);
  const int32_t id = client_.request("GET", "/", "app.localhost", {{"x-big", std::string(5000, 'a')}});
  pump();
  EXPECT_EQ(client_.results[id].status(), 431);
  EXPECT_EQ(dir_.open_calls, 0);
}

// An HPACK header bomb, written by hand (nghttp2's encoder would not): one 16 KiB HEADERS frame
// adds a 1,000-byte field to the dynamic table and references it ~15,000 times (one byte each):
// 15 MB of header list. Before the fix every reference reached the stream (and was validated by
// nghttp2 byte by byte, ~20 ms of CPU per frame at 4,000 bytes); now the stream is reset once the
// list passes twice max_header_bytes and the rest is skipped; each bomb counts as a local answer.
TEST_F(H2ConnectionTest, HeaderBombIsResetWithoutDeliveringEveryField) {
  H2Config cfg;
  cfg.max_header_bytes = 4096;
  cfg.exchange.limits.max_local_answers = 3;
  make(cfg);
  pump();
  const auto bomb = [](uint32_t id) {
    std::string block = "\x82\x87\x84";  // :method GET, :scheme https, :path /
    block +=
        "\x01\x0d"
        "app.localhost";                   // :authority, literal without indexing
    block += "\x40\x05x-big\x7f\xe9\x06";  // x-big, incremental indexing, 1000-byte value
    block += std::string(1000, 'b');
    block += std::string(16384 - block.size(), '\xbe');  // index 62: x-big, again and again
    return raw_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM | NGHTTP2_FLAG_END_HEADERS, id, block);
  };
  // Straight to the edge, its answers read and dropped: the test client did not open these streams
  // (and its HPACK decoder would not follow the edge's encoder through them).
  std::string edge_out;
  for (uint32_t id : {1u, 3u, 5u}) {
    ASSERT_FALSE(conn_->finished()) << conn_->error();
    const std::string frame = bomb(id);
    EXPECT_EQ(conn_->on_client_bytes(bytes(frame)), frame.size());
    for (auto out = conn_->client_output(); !out.empty(); out = conn_->client_output()) {
      edge_out.append(reinterpret_cast<const char*>(out.data()), out.size());
      conn_->on_client_written(out.size());
    }
  }
  // The edge's frames: a RST_STREAM (INTERNAL_ERROR) per bomb, no response HEADERS (no 431 page).
  std::map<uint32_t, uint32_t> resets;  // stream -> code
  int response_heads = 0;
  for (size_t at = 0; at + 9 <= edge_out.size();) {
    const auto u = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(edge_out[at + i])); };
    const uint32_t len = u(0) << 16 | u(1) << 8 | u(2), type = u(3);
    const uint32_t sid = (u(5) & 0x7f) << 24 | u(6) << 16 | u(7) << 8 | u(8);
    if (type == NGHTTP2_HEADERS) ++response_heads;
    if (type == NGHTTP2_RST_STREAM && len == 4) resets[sid] = u(9) << 24 | u(10) << 16 | u(11) << 8 | u(12);
    at += 9 + len;
  }
  EXPECT_EQ(response_heads, 0);
  EXPECT_EQ(resets,
            (std::map<uint32_t, uint32_t>{
                {1, NGHTTP2_INTERNAL_ERROR}, {3, NGHTTP2_INTERNAL_ERROR}, {5, NGHTTP2_INTERNAL_ERROR}}));
  EXPECT_EQ(conn_->header_bombs(), 3u);
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2LocalAnswers));
  // Per bomb: 4 request fields, then x-big until the list passes 2 * 4096 (8 of 1,037 bytes).
  EXPECT_LE(conn_->header_fields(), 3u * 20u) << "the skipped references never reach the stream";
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_TRUE(conn_->finished()) << "three local answers in a row: GOAWAY, no stream left";
}

TEST_F(H2ConnectionTest, ConcurrentStreamsOverTheLimitAreRefused) {
  H2Config cfg;
  cfg.exchange.limits.h2_max_concurrent_streams = 2;
  make(cfg);
  // All three go out before the client has seen the edge's SETTINGS.
  client_.request("GET", "/1", "app.localhost");
  client_.request("GET", "/2", "app.localhost");
  const int32_t third = client_.request("GET", "/3", "app.localhost");
  pump();
  EXPECT_EQ(dir_.streams.size(), 2u);
  EXPECT_TRUE(client_.results[third].closed);
  EXPECT_EQ(client_.results[third].close_code, static_cast<uint32_t>(NGHTTP2_REFUSED_STREAM));
}

TEST_F(H2ConnectionTest, ClientResetCancelsTheTunnelStreamAndReturnsHeldCredit) {
  const int32_t id = client_.request("GET", "/", "app.localhost");
  pump();
  client_reads_ = false;
  const std::string payload(30'000, 'x');
  agent_answers(head(200, payload.size()), payload, false);
  const size_t head_len = tunnel::encode_response_head(head(200, payload.size())).size();
  client_.reset(id);
  pending_in_ += client_.output();
  conn_->on_client_bytes(bytes(pending_in_));
  pending_in_.clear();
  EXPECT_EQ(stream().cancelled, std::optional<uint32_t>(tunnel::kStreamCancelled));
  conn_.reset();  // bytes still in the output are dropped with the connection
  EXPECT_EQ(stream().consumed, head_len + payload.size()) << "every byte's credit comes back";
  ASSERT_FALSE(logs_.empty());
  EXPECT_EQ(logs_.back().note, "client reset the stream");
}

TEST_F(H2ConnectionTest, RapidResetEndsTheConnection) {
  H2Config cfg;
  cfg.reset_burst = 5;
  cfg.reset_rate = 1;
  make(cfg);
  pump();
  for (int i = 0; i < 20 && !conn_->finished(); ++i) {
    const int32_t id = client_.request("GET", "/", "app.localhost");
    pump();  // the HEADERS go out (nghttp2 drops a request reset before it was sent)
    client_.reset(id);
    pump();
  }
  ASSERT_TRUE(client_.goaway.has_value()) << "nghttp2's reset rate limit sent GOAWAY";
  EXPECT_EQ(*client_.goaway, static_cast<uint32_t>(NGHTTP2_INTERNAL_ERROR)) << "nghttp2's code for it";
  EXPECT_LE(dir_.open_calls, 20);
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2ResetRate));
}

TEST_F(H2ConnectionTest, NoPrefaceInTimeClosesSilently) {
  clock_.t += std::chrono::seconds(11);
  ASSERT_TRUE(conn_->next_deadline().has_value());
  conn_->on_tick(clock_.t);
  EXPECT_TRUE(conn_->finished());
}

TEST_F(H2ConnectionTest, Http1BytesAreAConnectionError) {
  const std::string junk = "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n";
  conn_->on_client_bytes(bytes(junk));
  EXPECT_TRUE(conn_->finished());
  EXPECT_FALSE(conn_->error().empty());
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2ProtocolError));
}

TEST_F(H2ConnectionTest, TooManyOwnAnswersInARowSendGoaway) {
  H2Config cfg;
  cfg.exchange.limits.max_local_answers = 3;
  make(cfg);
  for (int i = 0; i < 3; ++i) client_.request("GET", "/", "nope.localhost");
  pump();
  ASSERT_TRUE(client_.goaway.has_value());
  EXPECT_EQ(*client_.goaway, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  EXPECT_TRUE(conn_->finished()) << "GOAWAY sent and no stream left";
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2LocalAnswers));
}

TEST_F(H2ConnectionTest, ContinuationFloodEndsTheConnection) {
  pump();
  ASSERT_EQ(client_.request("GET", "/", "app.localhost"), 1);  // keeps the HPACK states in step
  std::string flood = raw_frame(NGHTTP2_HEADERS, NGHTTP2_FLAG_END_STREAM, 3, "\x82\x87\x84");
  for (int i = 0; i < 20; ++i)
    flood += raw_frame(NGHTTP2_CONTINUATION, 0, 3,
                       "\x00\x01"
                       "a"
                       "\x01"
                       "b");
  pump();
  conn_->on_client_bytes(bytes(flood));
  EXPECT_TRUE(conn_->finished());
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2Continuations)) << conn_->error();
}

TEST_F(H2ConnectionTest, PingFloodFromAClientThatDoesNotReadEndsTheConnection) {
  pump();
  std::string flood;
  for (int i = 0; i < 20'000; ++i) flood += raw_frame(NGHTTP2_PING, 0, 0, std::string(8, 'p'));
  size_t taken = 0;
  while (taken < flood.size() && !conn_->finished()) {  // never reads the PING ACKs
    const size_t n = conn_->on_client_bytes(bytes(std::string_view(flood).substr(taken, 65536)));
    if (n == 0) break;
    taken += n;
  }
  EXPECT_TRUE(conn_->finished()) << "took " << taken << " bytes";
  EXPECT_EQ(conn_->shed(), std::optional(PublicShed::kH2Flood)) << conn_->error();
  EXPECT_LE(conn_->buffered_output(), size_t{128} * 1024);
}

TEST_F(H2ConnectionTest, ResponseOutputIsBoundedWhenTheClientDoesNotRead) {
  H2Config cfg;
  cfg.exchange.limits.max_pending_output = 16 * 1024;
  make(cfg);
  client_.request("GET", "/", "app.localhost", {});
  pump();
  client_reads_ = false;
  const std::string payload(60'000, 'x');
  agent_answers(head(200, payload.size()), payload, true);
  EXPECT_LE(conn_->buffered_output(), cfg.exchange.limits.max_pending_output + 16 * 1024 + 64);
  client_reads_ = true;
  pump();
  EXPECT_EQ(client_.results[1].body.size(), payload.size());
}

// The edge drains (SIGTERM): GOAWAY 2^31-1 at once (RFC 9113 §6.8), so a request the client is
// sending now is still taken; a second GOAWAY kDrainNotice later names the last stream taken. The
// streams under way finish, a later one is refused, and the connection ends once they are done.
TEST_F(H2ConnectionTest, DrainSendsTwoGoawaysAndLetsStreamsFinish) {
  const int32_t a = client_.request("GET", "/slow", "app.localhost");
  pump();
  ASSERT_EQ(dir_.streams.size(), 1u);
  conn_->drain();
  EXPECT_TRUE(conn_->busy()) << "a stream is under way";
  const int32_t b = client_.request("GET", "/late-but-in-time", "app.localhost");
  pump();
  ASSERT_EQ(client_.goaway_last, std::vector<int32_t>{(1u << 31) - 1});
  EXPECT_EQ(dir_.streams.size(), 2u) << "sent before the final GOAWAY: taken";
  clock_.t += H2Connection::kDrainNotice;
  conn_->on_tick(clock_.t);
  pump();
  ASSERT_EQ(client_.goaway_last.size(), 2u);
  EXPECT_EQ(client_.goaway_last[1], b) << "the final GOAWAY names the last stream taken";
  EXPECT_EQ(*client_.goaway, static_cast<uint32_t>(NGHTTP2_NO_ERROR));
  client_.request("GET", "/after", "app.localhost");
  pump();
  EXPECT_EQ(dir_.streams.size(), 2u) << "above the last stream id: not processed";
  for (auto& [id, s] : dir_.streams) {
    auto answer = tunnel::encode_response_head(head(200, 2));
    answer.push_back('o');
    answer.push_back('k');
    s.events->on_response_data(answer, true);
  }
  pump();
  EXPECT_EQ(client_.results[a].status(), 200);
  EXPECT_EQ(client_.results[b].status(), 200);
  EXPECT_TRUE(client_.results[a].ended);
  EXPECT_TRUE(client_.results[b].ended);
  EXPECT_TRUE(conn_->finished()) << "drained: the last stream ended";
}

// The last stream's END_STREAM is serialized in the step that finishes a drained connection: until
// the transport took those bytes the connection is busy, or the edge's drain would close the socket
// with the response's tail still here (tests/net/edge_restart.sh lost 28 KB of a 16 MiB download).
TEST_F(H2ConnectionTest, ADrainedConnectionIsBusyUntilItsLastBytesAreTaken) {
  const int32_t a = client_.request("GET", "/big", "app.localhost");
  pump();
  ASSERT_EQ(dir_.streams.size(), 1u);
  conn_->drain();
  clock_.t += H2Connection::kDrainNotice;
  conn_->on_tick(clock_.t);
  pump();
  ASSERT_EQ(client_.goaway_last.size(), 2u);
  client_reads_ = false;  // the transport takes nothing for now
  auto answer = tunnel::encode_response_head(head(200, 1000));
  answer.insert(answer.end(), 1000, 'x');
  dir_.streams.begin()->second.events->on_response_data(answer, true);
  pump();
  ASSERT_TRUE(conn_->finished()) << "drained: the last stream ended";
  ASSERT_FALSE(conn_->client_output().empty());
  EXPECT_TRUE(conn_->busy()) << "its last frames are still to be written";
  client_reads_ = true;
  pump();
  EXPECT_TRUE(conn_->client_output().empty());
  EXPECT_FALSE(conn_->busy());
  EXPECT_EQ(client_.results[a].status(), 200);
  EXPECT_TRUE(client_.results[a].ended);
  EXPECT_EQ(client_.results[a].body.size(), 1000u);
}

}  // namespace
}  // namespace wtmesh::edge::test
