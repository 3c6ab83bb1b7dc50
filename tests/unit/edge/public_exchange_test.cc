// PublicExchange driven directly, sans-I/O: a recording ExchangeSink stands for the codec, a
// FakeDirectory for the tunnel sessions. No HTTP/1.1 in sight.
#include "edge/public_exchange.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "directory_fixture.h"
#include "edge/visitor_gate.h"
#include "tunnel/framed_body.h"

namespace wtmesh::edge {
namespace {

using test::bytes;
using test::decode_request_stream;
using test::header_value;
using test::str;

struct RecordingSink final : ExchangeSink {
  void send_continue() override { events.push_back("continue"); }
  void send_response_head(const tunnel::ResponseHead& head, bool, bool reusable) override {
    events.push_back("head " + std::to_string(head.status) + (reusable ? "" : " last"));
    last_head = head;
  }
  void send_response_body(std::span<const uint8_t> data, const StreamRef& ref) override {
    body += str(data);
    credits.emplace_back(ref, data.size());
  }
  void send_interim(const tunnel::ResponseHead& head) override {
    events.push_back("interim " + std::to_string(head.status));
  }
  void send_trailers(const tunnel::HeaderPairs& t) override {
    std::string e = "trailers";
    for (const auto& [n, v] : t) e += " " + n + "=" + v;
    events.push_back(e);
  }
  void send_response_end(bool complete) override { events.push_back(complete ? "end" : "end short"); }
  void send_error(int status, std::string_view detail, bool reusable, bool from_agent) override {
    events.push_back("error " + std::to_string(status) + (reusable ? "" : " last") +
                     (from_agent ? " agent" : ""));
    last_detail = std::string(detail);
  }
  void exchange_done(const ExchangeOutcome& o) override { done.push_back(o); }
  void exchange_progress() override { ++progress; }

  std::vector<std::string> events;
  tunnel::ResponseHead last_head;
  std::string body, last_detail;
  std::vector<std::pair<StreamRef, size_t>> credits;
  std::vector<ExchangeOutcome> done;
  int progress = 0;
};

class PublicExchangeTest : public test::DirectoryTest {
 protected:
  void SetUp() override {
    DirectoryTest::SetUp();
    ExchangeConfig cfg;
    cfg.client = client();
    cfg.clock = clock_.fn();
    cfg.limits.body_chunk = 4;
    ex_ = std::make_unique<PublicExchange>(dir_, cfg, sink_);
  }
  static ExchangeRequest get(std::string host = "app.localhost") {
    ExchangeRequest r;
    r.method = "GET";
    r.target = "/x";
    r.authority = host;
    r.host = host;
    r.headers = {{"user-agent", "t"}, {"x-forwarded-for", "10.0.0.1"}};
    return r;
  }

  RecordingSink sink_;
  std::unique_ptr<PublicExchange> ex_;
};

TEST_F(PublicExchangeTest, ClientIpHeadersFromTheClientAreReplacedByTheAddressTheEdgeSaw) {
  auto req = get();
  for (const char* name : {"x-real-ip", "true-client-ip", "x-client-ip", "cf-connecting-ip"})
    req.headers.emplace_back(name, "127.0.0.1");
  ex_->begin(req, clock_.t);
  ASSERT_EQ(dir_.streams.size(), 1u);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  size_t real_ip = 0;
  for (const auto& [name, value] : rh.headers) {
    EXPECT_NE(name, "true-client-ip");
    EXPECT_NE(name, "x-client-ip");
    EXPECT_NE(name, "cf-connecting-ip");
    if (name == "x-real-ip") {
      ++real_ip;
      EXPECT_EQ(value, "192.0.2.1");
    }
  }
  EXPECT_EQ(real_ip, 1u);
}

TEST_F(PublicExchangeTest, VisitorAuthAnswers403And401BeforeTheAgentAndStripsTheEdgesCredentials) {
  std::string error;
  tunnel::VisitorPolicy p;
  p.basic.push_back(*tunnel::make_basic_credential("alice:pw", &error));
  p.deny.push_back(*tunnel::parse_cidr("198.51.100.0/24", &error));
  dir_.gate = std::make_shared<VisitorGate>(p);
  // No credentials: 401 with the challenge, an HTML page, nothing opened.
  ex_->begin(get(), clock_.t);
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"head 401", "end"}));
  EXPECT_EQ(header_value(sink_.last_head.headers, "www-authenticate"),
            "Basic realm=\"app.localhost\", charset=\"UTF-8\"");
  EXPECT_NE(sink_.body.find("needs a user name and password"), std::string::npos) << sink_.body;
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].status, 401);
  EXPECT_TRUE(sink_.done[0].reusable);
  // With them: the request reaches the agent without its Authorization field.
  sink_ = RecordingSink{};
  auto req = get();
  req.headers.emplace_back("Authorization", "Basic YWxpY2U6cHc=");  // alice:pw
  req.headers.emplace_back("cookie", "k=v");
  ex_->begin(req, clock_.t);
  ASSERT_EQ(dir_.open_calls, 1);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "authorization"), "<none>");
  EXPECT_EQ(header_value(rh.headers, "cookie"), "k=v");
}

TEST_F(PublicExchangeTest, VisitorAuthDeniedRangeGets403EvenForAnUpgrade) {
  std::string error;
  tunnel::VisitorPolicy p;
  p.allow.push_back(*tunnel::parse_cidr("10.0.0.0/8", &error));  // the client is 192.0.2.1
  dir_.gate = std::make_shared<VisitorGate>(p);
  auto req = get();
  req.upgrade = "websocket";
  ex_->begin(req, clock_.t);
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"error 403 last"})) << "an upgrade: its bytes would follow";
  EXPECT_NE(sink_.last_detail.find("not allowed"), std::string::npos);
}

TEST_F(PublicExchangeTest, NeutralRequestBecomesTheTunnelHeadAndTheAnswerGoesToTheSink) {
  ex_->begin(get(), clock_.t);
  ASSERT_EQ(dir_.streams.size(), 1u);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(rh.method, "GET");
  EXPECT_EQ(rh.target, "/x");
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-for"), "10.0.0.1, 192.0.2.1");
  EXPECT_EQ(header_value(rh.headers, "x-forwarded-proto"), "https");
  EXPECT_EQ(header_value(rh.headers, "forwarded"), "for=192.0.2.1;host=\"app.localhost\";proto=https");
  EXPECT_EQ(header_value(rh.headers, "x-real-ip"), "192.0.2.1");

  agent_answers(head(200, 5), "hel", false);
  stream().events->on_response_data(bytes("lo"), true);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"head 200", "end"}));
  EXPECT_EQ(sink_.body, "hello");
  ASSERT_EQ(sink_.credits.size(), 2u) << "body credit is the sink's to return";
  EXPECT_EQ(sink_.credits[0].first.id, dir_.last);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].status, 200);
  EXPECT_TRUE(sink_.done[0].reusable);
  EXPECT_TRUE(stream().released);
  EXPECT_FALSE(ex_->active());
}

TEST_F(PublicExchangeTest, UnknownHostIs404AndBusyRetriesUntilTheOpenTimeout) {
  ex_->begin(get("nobody.localhost"), clock_.t);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"error 404"}));
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].status, 404);

  dir_.client_limited = 1000;
  const SteadyTime start = clock_.t;
  ex_->begin(get(), start);
  EXPECT_TRUE(ex_->active());
  while (ex_->active()) {
    ASSERT_TRUE(ex_->next_deadline());
    clock_.t = *ex_->next_deadline();
    ex_->on_tick(clock_.t);
  }
  EXPECT_EQ(sink_.events.back(), "error 429");
  EXPECT_EQ(clock_.t - start, std::chrono::milliseconds(1000));
}

TEST_F(PublicExchangeTest, RequestBodyIsTakenOnlyAsFarAsTheStreamTakesIt) {
  auto r = get();
  r.method = "POST";
  r.has_body = true;
  r.content_length = 6;
  r.expect_continue = true;
  dir_.capacity = 0;
  ex_->begin(r, clock_.t);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"continue"}));
  EXPECT_EQ(ex_->request_body_room(), 0u) << "the head is not out yet";
  stream().capacity = 1000;
  stream().events->on_request_writable();
  EXPECT_EQ(ex_->request_body_room(), 4u);
  stream().capacity = 2;
  ex_->on_request_body(bytes("abcd"));
  EXPECT_EQ(ex_->request_body_room(), 0u);
  EXPECT_EQ(ex_->buffered_body(), 2u);
  stream().capacity = 100;
  stream().events->on_request_writable();
  EXPECT_EQ(ex_->request_body_room(), 4u);
  ex_->on_request_body(bytes("ef"));
  ex_->on_request_end();
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(body, "abcdef");
  EXPECT_TRUE(stream().fin);
}

// Request trailers (§4.1): with the session feature the body goes framed and ends with the client's
// trailer section (forbidden fields dropped); without it, raw as before and the trailers are dropped.
class RequestTrailersTest : public PublicExchangeTest {
 protected:
  // A POST whose body may end with trailers (HTTP/2, HTTP/3, chunked HTTP/1.1) unless it has a length
  // on HTTP/1.1; the session speaks the feature.
  ExchangeRequest post(bool may_have_trailers = true, std::optional<uint64_t> length = std::nullopt) {
    auto r = get();
    r.method = "POST";
    r.has_body = true;
    r.content_length = length;
    r.may_have_trailers = may_have_trailers;
    dir_.request_trailers = true;
    return r;
  }
  // The last stream carries an unframed head and exactly `body`.
  void expect_raw_body(std::string_view body) {
    tunnel::RequestHead rh;
    std::string raw;
    ASSERT_TRUE(decode_request_stream(stream().written, rh, &raw));
    EXPECT_FALSE(rh.framed);
    EXPECT_EQ(raw, body);
  }
};

TEST_F(RequestTrailersTest, GoFramedWithTheFeature) {
  ex_->begin(post(), clock_.t);
  ex_->on_request_body(bytes("abcd"));
  ex_->on_request_body(bytes("ef"));
  ex_->on_request_end({{"X-Checksum", "abc"}, {"content-length", "6"}, {"host", "x"}});
  tunnel::HeadReader<tunnel::RequestHead> reader;
  tunnel::RequestHead rh;
  ASSERT_EQ(reader.feed(stream().written, rh), tunnel::WireError::kNone);
  EXPECT_FALSE(rh.content_length);
  const std::string section =
      "\x01\x0a"
      "x-checksum"
      "\x03"
      "abc";
  EXPECT_EQ(str(reader.take_body()), std::string("\x04"
                                                 "abcd"
                                                 "\x02"
                                                 "ef"
                                                 "\x00\x10",
                                                 10) +
                                         section);
  const auto req = framed_request();
  ASSERT_TRUE(req);
  EXPECT_EQ(req->data, "abcdef");
  EXPECT_EQ(req->trailers, (tunnel::HeaderPairs{{"x-checksum", "abc"}}));
  EXPECT_TRUE(stream().fin);

  // The same request on a session without the feature: raw body, no trailers.
  agent_answers(head(204, std::nullopt, false), "", true);
  ASSERT_FALSE(ex_->active());
  auto r = post();
  dir_.request_trailers = false;
  ex_->begin(r, clock_.t);
  ex_->on_request_body(bytes("ab"));
  ex_->on_request_end({{"x-checksum", "abc"}});
  expect_raw_body("ab");
}

TEST_F(RequestTrailersTest, PastTheTunnelLimitAre400) {
  ex_->begin(post(), clock_.t);
  tunnel::HeaderPairs many;
  for (size_t i = 0; i <= tunnel::kMaxHeaderCount; ++i) many.emplace_back("t" + std::to_string(i), "v");
  ex_->on_request_end(many);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"error 400 last"}));
  EXPECT_NE(sink_.last_detail.find("trailer section"), std::string::npos) << sink_.last_detail;
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled);
}

TEST_F(RequestTrailersTest, AnHttp1BodyWithALengthIsNotFramed) {
  ex_->begin(post(/*may_have_trailers=*/false, 2), clock_.t);  // what Http1Connection says for it
  ex_->on_request_body(bytes("ab"));
  ex_->on_request_end();
  expect_raw_body("ab");
}

TEST_F(PublicExchangeTest, SlowBodyIs408AndCancelLogs499) {
  auto r = get();
  r.has_body = true;
  ex_->begin(r, clock_.t);
  ASSERT_TRUE(ex_->next_deadline());
  clock_.t = *ex_->next_deadline();
  ex_->on_tick(clock_.t);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"error 408 last"}));
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_FALSE(sink_.done[0].reusable);

  ex_->begin(get(), clock_.t);
  const auto o = ex_->cancel("client closed the connection");
  ASSERT_TRUE(o);
  EXPECT_EQ(o->status, 499);
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled);
  EXPECT_FALSE(ex_->cancel("again"));
}

TEST_F(PublicExchangeTest, AgentErrorHeaderAndInterimResponses) {
  ex_->begin(get(), clock_.t);
  agent_answers(head(503, std::nullopt, true, {{std::string(tunnel::kErrorHeader), "no upstream"}}),
                "ignored", true);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"error 502 agent"}));
  EXPECT_EQ(sink_.body, "");
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].note, "no upstream");

  ex_->begin(get(), clock_.t);
  agent_answers(head(101, std::nullopt), "", false);
  EXPECT_EQ(sink_.events.back(), "error 502 last") << "101 without an upgrade asked for";
  EXPECT_EQ(stream().cancelled, tunnel::kStreamProtocolError);
}

TEST_F(PublicExchangeTest, ShortAndLongBodiesAreNotReusable) {
  ex_->begin(get(), clock_.t);
  agent_answers(head(200, 5), "abc", true);
  EXPECT_EQ(sink_.events.back(), "end short");
  EXPECT_FALSE(sink_.done.back().reusable);

  ex_->begin(get(), clock_.t);
  agent_answers(head(200, 2), "abc", false);
  EXPECT_EQ(sink_.body, "abcab");
  EXPECT_EQ(sink_.done.back().note, "agent sent more than content-length");
  EXPECT_FALSE(sink_.done.back().reusable);
  EXPECT_EQ(stream().cancelled, tunnel::kStreamProtocolError);
}

TEST_F(PublicExchangeTest, UpgradedExchangeIsAByteStreamBothWays) {
  auto r = get();
  r.upgrade = "websocket";
  ex_->begin(r, clock_.t);
  tunnel::RequestHead rh;
  std::string body;
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(header_value(rh.headers, "upgrade"), "websocket");
  EXPECT_TRUE(rh.has_body);
  EXPECT_FALSE(stream().fin) << "the client's bytes follow the head";

  agent_answers(head(101, std::nullopt), "hi", false);
  EXPECT_TRUE(ex_->upgraded());
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"head 101 last"}));
  EXPECT_EQ(sink_.body, "hi");
  EXPECT_FALSE(ex_->next_deadline()) << "no body clock once upgraded";

  ASSERT_GT(ex_->request_body_room(), 0u);
  ex_->on_request_body(bytes("ping"));
  stream().events->on_response_data(bytes("pong"), true);
  EXPECT_EQ(sink_.body, "hipong");
  EXPECT_TRUE(sink_.done.empty()) << "the client's direction is still open";
  EXPECT_FALSE(stream().cancelled);
  ex_->on_request_body(bytes("bye"));
  ex_->on_request_end();
  ASSERT_TRUE(decode_request_stream(stream().written, rh, &body));
  EXPECT_EQ(body, "pingbye");
  EXPECT_TRUE(stream().fin);
  EXPECT_TRUE(stream().released);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_EQ(sink_.done[0].status, 101);
  EXPECT_FALSE(sink_.done[0].reusable);
}

// Session feature `trailers` (docs/protocol.md §4.1): interim heads, a framed body and its trailers.
TEST_F(PublicExchangeTest, InterimHeadsAndAFramedBodyWithTrailers) {
  ex_->begin(get(), clock_.t);
  auto wire = framed_answer({100, 103}, head(200, std::nullopt), "hello", std::nullopt);
  tunnel::append_body_chunk(wire, bytes(" world"));
  ASSERT_TRUE(tunnel::append_body_end(wire, {{"grpc-status", "0"}, {"grpc-message", ""}}));
  // In two pieces, split inside the second chunk's data.
  const size_t cut = wire.size() - 14;
  stream().events->on_response_data(std::span<const uint8_t>(wire).first(cut), false);
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"interim 103", "head 200"})) << "100 is the edge's own";
  stream().events->on_response_data(std::span<const uint8_t>(wire).subspan(cut), true);
  EXPECT_EQ(sink_.body, "hello world");
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"interim 103", "head 200",
                                                    "trailers grpc-status=0 grpc-message=", "end"}));
  size_t credited = 0;
  for (const auto& c : sink_.credits) credited += c.second;
  EXPECT_EQ(credited, 11u);
  EXPECT_EQ(stream().consumed + credited, wire.size()) << "framing is credited at once, data by the sink";
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_TRUE(sink_.done[0].reusable);
}

TEST_F(PublicExchangeTest, FramedBodyErrorsAndTooManyInterimHeads) {
  // FIN before the end of a framed body: cut short.
  ex_->begin(get(), clock_.t);
  auto h = head(200, std::nullopt);
  h.framed = true;
  std::vector<uint8_t> wire = tunnel::encode_response_head(h);
  tunnel::append_body_chunk(wire, bytes("abc"));
  stream().events->on_response_data(wire, true);
  EXPECT_EQ(sink_.events.back(), "end short");
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_FALSE(sink_.done[0].reusable);

  // A byte after the trailer section: the stream is a protocol error.
  sink_ = {};
  ex_->begin(get(), clock_.t);
  wire = tunnel::encode_response_head(h);
  ASSERT_TRUE(tunnel::append_body_end(wire, {}));
  wire.push_back(0x01);
  stream().events->on_response_data(wire, false);
  EXPECT_EQ(stream().cancelled, tunnel::kStreamProtocolError);
  ASSERT_EQ(sink_.done.size(), 1u);
  EXPECT_FALSE(sink_.done[0].reusable);

  // Nine interim heads: 502.
  sink_ = {};
  ex_->begin(get(), clock_.t);
  wire.clear();
  for (size_t i = 0; i <= tunnel::kMaxInterimHeads; ++i) {
    const auto ih = tunnel::encode_response_head(head(103, std::nullopt, false));
    wire.insert(wire.end(), ih.begin(), ih.end());
  }
  stream().events->on_response_data(wire, false);
  EXPECT_EQ(sink_.events.back(), "error 502 last");
  EXPECT_EQ(std::count(sink_.events.begin(), sink_.events.end(), "interim 103"), 8);
  EXPECT_EQ(stream().cancelled, tunnel::kStreamProtocolError);
}

TEST_F(PublicExchangeTest, AnUpgradeSkipsInterimHeads) {
  auto r = get();
  r.upgrade = "websocket";
  ex_->begin(r, clock_.t);
  auto wire = tunnel::encode_response_head(head(103, std::nullopt, false, {{"link", "</a>"}}));
  const auto h101 = tunnel::encode_response_head(head(101, std::nullopt));
  wire.insert(wire.end(), h101.begin(), h101.end());
  stream().events->on_response_data(wire, false);
  EXPECT_TRUE(ex_->upgraded());
  EXPECT_EQ(sink_.events, (std::vector<std::string>{"head 101 last"}));
}

}  // namespace
}  // namespace wtmesh::edge
