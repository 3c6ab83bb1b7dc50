// Http1Connection against slow, greedy and malicious clients (issue 9): unread output stops the parser,
// header and body deadlines, the per-client stream cap, bounded chunk metadata, and request framing
// that could be read two ways (RFC 9112 §6.3).
#include <gtest/gtest.h>

#include "http1_connection_fixture.h"

namespace wtmesh::edge {
namespace {

using namespace std::chrono_literals;
using test::bytes;
using test::Http1ConnectionTest;
using test::str;

constexpr std::string_view k404 = "GET / HTTP/1.1\r\nHost: nosuch.localhost\r\n\r\n";

// Writes pipelined requests the way a client that never reads does: as long as the proxy takes them.
size_t flood(Http1Connection& proxy, std::string_view request, size_t max_requests) {
  std::string burst;
  for (int i = 0; i < 64; ++i) burst += request;
  size_t taken = 0;
  while (taken < max_requests * request.size()) {
    const size_t n = proxy.on_client_bytes(bytes(burst));
    taken += n;
    if (n < burst.size()) break;
  }
  return taken;
}

TEST_F(Http1ConnectionTest, UnreadOutputStopsTheParserWhoeverWroteIt) {
  Http1Config cfg;
  cfg.limits.max_local_answers = 1'000'000;  // this test is about the output bound alone
  make(cfg);
  const size_t bound = cfg.limits.max_pending_output;
  const size_t taken = flood(*proxy_, k404, 100'000);
  EXPECT_LT(taken, 100'000 * k404.size()) << "the proxy stops taking input";
  const std::string one = [&] {
    Http1Connection p(dir_, {}, {});
    p.on_client_bytes(bytes(k404));
    return str(p.client_output());
  }();
  EXPECT_GE(proxy_->buffered_output(), bound);
  EXPECT_LT(proxy_->buffered_output(), bound + one.size()) << "one response past the bound at most";
  EXPECT_LE(proxy_->buffered_input(), proxy_->input_capacity());
  const size_t answered = logs_.size();
  EXPECT_EQ(answered, proxy_->buffered_output() / one.size());
  EXPECT_EQ(proxy_->on_client_bytes(bytes(k404)), 0u) << "input full: the glue stops reading the socket";

  // The client reads: the held requests are answered, bounded again by what it leaves unread.
  drain();
  EXPECT_GT(logs_.size(), answered);
  EXPECT_LT(proxy_->buffered_output(), bound + one.size());
  EXPECT_FALSE(proxy_->finished());
}

TEST_F(Http1ConnectionTest, TheHundredthOwnAnswerInARowClosesTheConnection) {
  for (int i = 0; i < 99; ++i) feed(k404);
  drain();
  EXPECT_EQ(logs_.size(), 99u);
  EXPECT_FALSE(proxy_->finished());
  // The agent answering resets the count.
  feed("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  agent_answers(head(204, std::nullopt, false), "", true);
  for (int i = 0; i < 99; ++i) feed(k404);
  EXPECT_FALSE(proxy_->finished());
  feed(k404);
  EXPECT_TRUE(proxy_->finished());
  const std::string out = drain();
  EXPECT_NE(out.rfind("connection: close"), std::string::npos);
  EXPECT_EQ(logs_.size(), 200u);
}

TEST_F(Http1ConnectionTest, UnreadOutputAlsoHoldsBackOfflineTunnelErrors) {
  Http1Config cfg;
  cfg.limits.max_local_answers = 1'000'000;
  make(cfg);
  dir_.routes["gone.localhost"] = RouteLookup{RouteLookup::Kind::kOffline, 0, 0, "gone.localhost"};
  flood(*proxy_, "GET / HTTP/1.1\r\nHost: gone.localhost\r\n\r\n", 100'000);
  EXPECT_LT(proxy_->buffered_output(), PublicLimits{}.max_pending_output + 1024);
  EXPECT_LT(logs_.size(), 200u);
  ASSERT_FALSE(logs_.empty());
  EXPECT_EQ(logs_.back().status, 502);
}

TEST_F(Http1ConnectionTest, AConnectionThatSendsNothingIsClosedSilentlyAtTheHeaderTimeout) {
  ASSERT_TRUE(proxy_->next_deadline());
  EXPECT_EQ(*proxy_->next_deadline(), clock_.t + 10s)
      << "the first request counts from the connection's start";
  clock_.t += 9s;
  proxy_->on_tick(clock_.t);
  EXPECT_FALSE(proxy_->finished());
  clock_.t += 1s;
  proxy_->on_tick(clock_.t);
  EXPECT_TRUE(proxy_->finished());
  EXPECT_TRUE(proxy_->client_output().empty()) << "nothing asked, nothing answered";
  EXPECT_TRUE(logs_.empty());
}

TEST_F(Http1ConnectionTest, ASlowHeaderGets408) {
  const std::string req = "GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n";
  for (size_t i = 0; i < 9; ++i) {  // one byte a second: too slow
    feed(req.substr(i, 1));
    clock_.t += 1s;
    proxy_->on_tick(clock_.t);
  }
  EXPECT_FALSE(proxy_->finished());
  clock_.t += 1s;
  proxy_->on_tick(clock_.t);
  EXPECT_TRUE(proxy_->finished());
  EXPECT_TRUE(dir_.streams.empty());
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << out;
  EXPECT_NE(out.find("connection: close"), std::string::npos);
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 408);
}

TEST_F(Http1ConnectionTest, AKeepAliveConnectionIdlesWithoutHeaderDeadlineUntilTheNextRequestStarts) {
  feed("GET /1 HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  agent_answers(head(204, std::nullopt, false), "", true);
  drain();
  EXPECT_FALSE(proxy_->next_deadline()) << "between requests only the glue's idle timeout applies";
  clock_.t += 60s;
  proxy_->on_tick(clock_.t);
  EXPECT_FALSE(proxy_->finished());
  feed("GET /2 HT");
  ASSERT_TRUE(proxy_->next_deadline());
  EXPECT_EQ(*proxy_->next_deadline(), clock_.t + 10s) << "counted from the request's first byte";
  feed("TP/1.1\r\nHost: app.localhost\r\n\r\n");
  EXPECT_EQ(dir_.streams.size(), 2u);
  EXPECT_FALSE(proxy_->next_deadline()) << "the header arrived";
}

class SlowBodyTest : public Http1ConnectionTest {
 protected:
  void start_upload() {
    feed("POST /up HTTP/1.1\r\nHost: app.localhost\r\nContent-Length: 100000\r\n\r\n");
    ASSERT_EQ(dir_.streams.size(), 1u);
  }
  // `bytes_per_step` body bytes every `step`, for `total`; true when the proxy cut the request.
  bool upload(size_t bytes_per_step, std::chrono::milliseconds step, std::chrono::seconds total) {
    for (auto t = 0ms; t < total; t += step) {
      feed(std::string(bytes_per_step, 'x'));
      clock_.t += step;
      proxy_->on_tick(clock_.t);
      if (proxy_->finished()) return true;
    }
    return false;
  }
};

TEST_F(SlowBodyTest, OneByteEveryFiveSecondsIsCutAtTheBodyTimeout) {
  start_upload();
  EXPECT_TRUE(upload(1, 5000ms, 60s));
  EXPECT_LE(clock_.t - test::FakeClock{}.t, 25s) << "the first tick past 20 s (ticks are 5 s apart)";
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled) << "the stream is given back to the tunnel";
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 408 Request Timeout\r\n")) << out;
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, 408);
}

TEST_F(SlowBodyTest, AStalledBodyIsCutAtTheBodyTimeout) {
  start_upload();
  feed(std::string(50'000, 'x'));  // a good start, then nothing
  EXPECT_FALSE(upload(0, 1000ms, 19s));
  EXPECT_TRUE(upload(0, 1000ms, 2s)) << "no byte for body_timeout: cut whatever came before";
}

TEST_F(SlowBodyTest, AnUploadAtTwiceTheMinimumRateIsNeverCut) {
  start_upload();
  EXPECT_FALSE(upload(256, 125ms, 45s));  // 2 KiB/s for 45 s: 92 KB of the 100 KB
  EXPECT_FALSE(stream().cancelled);
}

TEST_F(SlowBodyTest, AnUploadBelowTheMinimumRateIsCutOnceItsCreditRunsOut) {
  start_upload();
  // 512 B/s earns half a second a second: the deadline (20 s ahead at first) is met at ~40 s.
  EXPECT_FALSE(upload(64, 125ms, 35s));
  EXPECT_TRUE(upload(64, 125ms, 10s));
}

TEST_F(SlowBodyTest, TimeTheAgentHoldsTheBodyBackIsNotTheClients) {
  dir_.capacity = 20'000;  // the stream takes the head and part of the body, then nothing
  start_upload();
  feed(std::string(60'000, 'x'));
  for (int i = 0; i < 120; ++i) {
    clock_.t += 1s;
    proxy_->on_tick(clock_.t);
  }
  EXPECT_FALSE(proxy_->finished()) << "2 minutes blocked by the agent: the client did nothing wrong";
  stream().capacity = 1 << 20;
  stream().events->on_request_writable();
  EXPECT_FALSE(upload(2048, 1000ms, 19s)) << "the client keeps its credit once the stream moves again";
}

TEST_F(SlowBodyTest, NoBodyDeadlineOnceTheAgentAnswered) {
  start_upload();
  agent_answers(head(200, std::nullopt), "streaming", false);
  EXPECT_FALSE(upload(0, 1000ms, 60s)) << "a full-duplex exchange is the application's business";
}

TEST_F(Http1ConnectionTest, TheClientKeyGoesToTheDirectoryAndItsLimitGives429) {
  Http1Config cfg;
  cfg.client = {"2001:db8::5", true, "2001:db8::/64"};
  make(cfg);
  dir_.client_limited = 1000;
  feed("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  EXPECT_EQ(dir_.last_client, "2001:db8::/64");
  clock_.t += 500ms;
  proxy_->on_tick(clock_.t);
  EXPECT_TRUE(proxy_->client_output().empty()) << "it waits for one of its own requests to end";
  clock_.t += 600ms;
  proxy_->on_tick(clock_.t);
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 429 Too Many Requests\r\n")) << out;
  EXPECT_FALSE(proxy_->finished()) << "a body-less request keeps the connection";
}

TEST_F(Http1ConnectionTest, AStreamRefusedAfterItWasTakenAnswersAsARefusedOpen) {
  // A tunnel on another worker: the directory said kOpened, and the far worker's retries ran out.
  feed("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  ASSERT_EQ(dir_.streams.size(), 1u);
  dir_.streams.begin()->second.events->on_open_refused(OpenStatus::kClientLimit, "at its limit");
  std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 429 Too Many Requests\r\n")) << out;
  EXPECT_FALSE(proxy_->finished()) << "a body-less request keeps the connection";
  feed("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  ASSERT_EQ(dir_.streams.size(), 2u);
  dir_.streams.rbegin()->second.events->on_open_refused(OpenStatus::kBusy, "no stream free");
  out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 502 Bad Gateway\r\n")) << out;
}

TEST_F(Http1ConnectionTest, AClientUnderItsLimitGetsAStreamOnRetry) {
  dir_.client_limited = 3;
  feed("GET / HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  for (int i = 0; i < 4; ++i) {
    clock_.t += 10ms;
    proxy_->on_tick(clock_.t);
  }
  EXPECT_EQ(dir_.streams.size(), 1u);
  EXPECT_TRUE(proxy_->client_output().empty());
}

TEST_F(Http1ConnectionTest, ALongChunkExtensionIs400NotAStall) {
  feed("POST /up HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(dir_.streams.size(), 1u);
  feed("1;a=");
  const std::string ext(70'000, 'x');
  size_t off = 0;
  while (off < ext.size() && !proxy_->finished()) {
    const size_t n = feed(std::string_view(ext).substr(off, 4096));
    if (n == 0) break;
    off += n;
  }
  EXPECT_TRUE(proxy_->finished());
  EXPECT_LE(off, proxy_->input_capacity()) << "refused once the line filled the input buffer";
  EXPECT_EQ(stream().cancelled, tunnel::kStreamCancelled);
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 400 Bad Request\r\n")) << out;
}

TEST_F(Http1ConnectionTest, AChunkExtensionOverTheBoundIs400EvenWhenComplete) {
  feed("POST /up HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n");
  feed("1;a=" + std::string(Http1Connection::kMaxChunkExtension, 'x') + "\r\nz\r\n");
  EXPECT_TRUE(proxy_->finished());
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1.1 400 Bad Request\r\n")) << out;
  EXPECT_NE(out.find("chunk extension"), std::string::npos) << out;
}

TEST_F(Http1ConnectionTest, ShortChunkExtensionsAndTrailersPass) {
  feed(
      "POST /up HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;name=value\r\nabc\r\n0;" +
      std::string(Http1Connection::kMaxChunkExtension - 1, 'e') + "\r\nx-trailer: 1\r\n\r\n");
  ASSERT_EQ(dir_.streams.size(), 1u);
  EXPECT_TRUE(stream().fin);
  EXPECT_FALSE(proxy_->finished());
}

struct SmugglingCase {
  std::string_view transfer_encoding;
  std::string_view version;
  int status;
};

class SmugglingTest : public Http1ConnectionTest, public ::testing::WithParamInterface<SmugglingCase> {};

TEST_P(SmugglingTest, AmbiguousFramingIsRefusedAndTheConnectionCloses) {
  const auto& c = GetParam();
  feed("POST /a " + std::string(c.version) + "\r\nHost: app.localhost\r\nTransfer-Encoding: " +
       std::string(c.transfer_encoding) + "\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: app.localhost\r\n\r\n");
  EXPECT_TRUE(dir_.streams.empty()) << "nothing reaches the agent";
  EXPECT_TRUE(proxy_->finished());
  const std::string out = drain();
  EXPECT_TRUE(out.starts_with("HTTP/1." + std::string(c.version.back() == '0' ? "0 " : "1 ") +
                              std::to_string(c.status)))
      << out;
  EXPECT_EQ(out.find("\nHTTP/"), std::string::npos) << "one response: the rest is never parsed";
  ASSERT_EQ(logs_.size(), 1u);
  EXPECT_EQ(logs_[0].status, c.status);
}

INSTANTIATE_TEST_SUITE_P(Rfc9112, SmugglingTest,
                         ::testing::Values(SmugglingCase{"chunked, identity", "HTTP/1.1", 400},
                                           SmugglingCase{"xchunked", "HTTP/1.1", 400},
                                           SmugglingCase{"gzip", "HTTP/1.1", 400},
                                           SmugglingCase{"identity", "HTTP/1.1", 400},
                                           SmugglingCase{"chunked, chunked", "HTTP/1.1", 400},
                                           SmugglingCase{",", "HTTP/1.1", 400},
                                           SmugglingCase{"gzip, chunked", "HTTP/1.1", 501},
                                           SmugglingCase{"chunked", "HTTP/1.0", 400}));

TEST_F(Http1ConnectionTest, TwoTransferEncodingFieldsAreOneList) {
  feed(
      "POST /a HTTP/1.1\r\nHost: app.localhost\r\nTransfer-Encoding: chunked\r\n"
      "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n");
  EXPECT_TRUE(dir_.streams.empty());
  EXPECT_TRUE(drain().starts_with("HTTP/1.1 400 "));
}

}  // namespace
}  // namespace wtmesh::edge
