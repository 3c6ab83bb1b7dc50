// UpstreamExchange, the socket-free core, with its HTTP/1.1 codec: byte vectors in and out through an
// in-memory session and a scripted transport, no sockets and no loop.
#include <gtest/gtest.h>

#include <map>

#include "agent/http1_codec.h"
#include "agent/upstream_exchange.h"
#include "fake_session.h"
#include "request_head.h"
#include "tunnel/framed_body.h"

namespace wtmesh::agent {
namespace {

using testing::FakeSession;
using testing::request;

std::span<const uint8_t> bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Records what the core asks of the upstream connection; the test completes each operation.
class ScriptedTransport final : public UpstreamTransport {
 public:
  void connect() override {
    ++connects;
    if (pooled) {
      pooled = false;
      core->on_connected(true);
    } else {
      connect_pending = true;
    }
  }
  void write(std::string_view b) override {
    EXPECT_FALSE(writing) << "one write at a time";
    writing = std::string(b);
  }
  void read(size_t max) override {
    EXPECT_FALSE(read_max) << "one read at a time";
    read_max = max;
  }
  bool unprocessed() const override { return refused; }
  void close() override {
    ++closes;
    drop();
  }
  void release() override {
    ++releases;
    drop();
  }
  void shutdown_write() override {
    EXPECT_FALSE(writing) << "no write pending";
    ++shutdowns;
  }
  std::string name() const override { return "127.0.0.1:8080"; }

  void connected() {
    ASSERT_TRUE(connect_pending);
    connect_pending = false;
    core->on_connected(false);
  }
  // Completes the pending write.
  void written(const std::string& error = {}) {
    ASSERT_TRUE(writing);
    if (error.empty()) upstream += *writing;
    writing.reset();
    core->on_written(error);
  }
  // The upstream sends `s` (then EOF): delivered in reads as the core asks for them. Returns what
  // the core did not ask for.
  std::string send(std::string_view s, bool eof = false) {
    while (read_max && (!s.empty() || eof)) {
      const size_t n = std::min(*read_max, s.size());
      read_max.reset();
      const bool end = eof && n == s.size();
      core->on_read(bytes(s.substr(0, n)), end, {});
      s.remove_prefix(n);
      if (end) return {};
    }
    return std::string(s);
  }

  UpstreamExchange* core = nullptr;
  bool pooled = false;   // the next connect() finds an idle pooled connection
  bool refused = false;  // the upstream says it did not process the request (an HTTP/2 or HTTP/3 refusal)
  int connects = 0, closes = 0, releases = 0, shutdowns = 0;
  bool connect_pending = false;
  std::optional<std::string> writing;
  std::optional<size_t> read_max;
  std::string upstream;  // every byte written upstream

 private:
  void drop() {
    connect_pending = false;
    writing.reset();
    read_max.reset();
  }
};

class ExchangeCore : public ::testing::Test {
 protected:
  UpstreamExchange& make(tunnel::RequestHead head, ExchangeLimits limits = {}) {
    core_ = std::make_unique<UpstreamExchange>(
        session_, kId, transport_, std::make_unique<Http1Codec>(limits.decoder), std::move(head),
        [this](const ExchangeResult& r) { result_ = r; }, limits);
    transport_.core = core_.get();
    return *core_;
  }
  FakeSession::Stream& stream() { return session_.streams[kId]; }

  static constexpr wt::StreamId kId = 0;
  FakeSession session_;
  ScriptedTransport transport_;
  std::unique_ptr<UpstreamExchange> core_;
  std::optional<ExchangeResult> result_;
};

TEST_F(ExchangeCore, GetIsWrittenAndTheKeepAliveConnectionReleased) {
  auto& ex = make(request("GET", "/hello"));
  ex.start({}, true);
  EXPECT_EQ(transport_.connects, 1);
  EXPECT_FALSE(transport_.writing);  // nothing before the connection is up
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "GET /hello HTTP/1.1\r\nHost: app.localhost:4433\r\n\r\n");
  ASSERT_TRUE(transport_.read_max);  // reads at once: the upstream may answer early
  EXPECT_EQ(*transport_.read_max, 64u * 1024);
  transport_.written();
  EXPECT_EQ(transport_.send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\nhello"),
            "");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_EQ(r->head.content_length, 5u);
  EXPECT_TRUE(r->head.headers.empty());  // connection is hop-by-hop
  EXPECT_EQ(r->body, "hello");
  EXPECT_TRUE(stream().fin);
  ASSERT_TRUE(result_);
  EXPECT_FALSE(result_->failed);
  EXPECT_EQ(result_->status, 200);
  EXPECT_EQ(result_->response_bytes, 5u);
  EXPECT_EQ(transport_.releases, 1);
  EXPECT_EQ(transport_.closes, 0);
  EXPECT_TRUE(ex.finished());
}

TEST_F(ExchangeCore, ChunkedUploadIsConsumedOnlyOnceWritten) {
  auto& ex = make(request("POST", "/echo", true));
  ex.start(bytes("abc"), false);
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing,
            "POST /echo HTTP/1.1\r\nHost: app.localhost:4433\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n");
  EXPECT_EQ(stream().consumed, 0u);
  // More body while the write is in flight waits for it.
  ex.on_body(bytes("de"), true);
  EXPECT_EQ(stream().consumed, 0u);
  transport_.written();
  EXPECT_EQ(stream().consumed, 3u);
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "2\r\nde\r\n0\r\n\r\n");
  transport_.written();
  EXPECT_EQ(stream().consumed, 5u);
  EXPECT_FALSE(transport_.writing);
  transport_.send("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(result_);
  EXPECT_EQ(result_->request_bytes, 5u);
  EXPECT_EQ(session_.response(kId)->head.status, 204);
  EXPECT_FALSE(session_.response(kId)->head.has_body);
  EXPECT_EQ(transport_.releases, 1);
}

// A framed request body (§4.1) to a chunked HTTP/1.1 upstream: the data as chunks, the trailers (the
// forwardable ones) in the last chunk's trailer section; the framing bytes are credited at once, the
// data once written.
TEST_F(ExchangeCore, FramedRequestTrailersEndTheChunkedUpload) {
  auto head = request("POST", "/echo", true);
  head.framed = true;
  auto& ex = make(head);
  // 3 "abc", then 2 "de" and the end with x-checksum: abc and a content-length to drop.
  std::vector<uint8_t> wire = {0x03, 'a', 'b', 'c'};
  ex.start(wire, false);
  EXPECT_EQ(stream().consumed, 1u) << "the chunk length byte";
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing,
            "POST /echo HTTP/1.1\r\nHost: app.localhost:4433\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n");
  wire = {0x02, 'd', 'e'};
  tunnel::append_body_end(wire, {{"x-checksum", "abc"}, {"content-length", "5"}});
  ex.on_body(wire, true);
  transport_.written();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "2\r\nde\r\n0\r\nx-checksum: abc\r\n\r\n");
  transport_.written();
  EXPECT_EQ(stream().consumed, 4u + wire.size()) << "every stream byte credited";
  transport_.send("HTTP/1.1 204 No Content\r\n\r\n");
  ASSERT_TRUE(result_);
  EXPECT_FALSE(result_->failed) << result_->error;
  EXPECT_EQ(result_->request_bytes, 5u) << "data only";
}

TEST_F(ExchangeCore, FramedRequestCutShortOrWithBytesAfterItsEndIsAProtocolError) {
  auto head = request("POST", "/echo", true);
  head.framed = true;
  auto& ex = make(head);
  ex.start(std::vector<uint8_t>{0x03, 'a', 'b', 'c'}, true);  // FIN without the end chunk
  EXPECT_EQ(stream().reset, tunnel::kStreamProtocolError);
  ASSERT_TRUE(result_);
  EXPECT_NE(result_->error.find("cut short"), std::string::npos) << result_->error;

  FakeSession other;
  std::optional<ExchangeResult> r2;
  ScriptedTransport t2;
  UpstreamExchange ex2(other, kId, t2, std::make_unique<Http1Codec>(), head,
                       [&](const ExchangeResult& r) { r2 = r; });
  t2.core = &ex2;
  std::vector<uint8_t> wire;
  tunnel::append_body_end(wire, {});
  wire.push_back('x');  // a byte after the trailer section
  ex2.start(wire, false);
  EXPECT_EQ(other.streams[kId].reset, tunnel::kStreamProtocolError);
  ASSERT_TRUE(r2);
  EXPECT_NE(r2->error.find("framed request body"), std::string::npos) << r2->error;
}

TEST_F(ExchangeCore, ChunkedResponseStreamsAndIsReusable) {
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  transport_.send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->head.content_length);
  EXPECT_TRUE(r->head.has_body);
  EXPECT_EQ(r->body, "hello");  // forwarded before the response is complete
  EXPECT_FALSE(stream().fin);
  EXPECT_FALSE(result_);
  transport_.send("6\r\n world\r\n0\r\n\r\n");
  EXPECT_EQ(session_.response(kId)->body, "hello world");
  EXPECT_TRUE(stream().fin);
  ASSERT_TRUE(result_);
  EXPECT_EQ(result_->response_bytes, 11u);
  EXPECT_EQ(transport_.releases, 1);
}

TEST_F(ExchangeCore, CloseDelimitedResponseEndsAtEofAndIsNotReused) {
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  transport_.send("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil ");
  EXPECT_FALSE(stream().fin);
  transport_.send("the end", true);
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "until the end");
  EXPECT_FALSE(r->head.content_length);
  EXPECT_TRUE(stream().fin);
  ASSERT_TRUE(result_);
  EXPECT_FALSE(result_->failed);
  EXPECT_EQ(transport_.releases, 0);
  EXPECT_EQ(transport_.closes, 1);
}

TEST_F(ExchangeCore, UpstreamGarbageIsAnInBand502) {
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  transport_.send("garbage\r\n\r\n");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 502);
  ASSERT_EQ(r->head.headers.size(), 2u);
  EXPECT_EQ(r->head.headers[0].first, "wtmesh-error");
  const std::string& why = r->head.headers[0].second;
  EXPECT_EQ(why.rfind("upstream error: the upstream sent a malformed response (", 0), 0u) << why;
  EXPECT_TRUE(why.ends_with(") (127.0.0.1:8080)")) << why;
  EXPECT_EQ(r->body, "502 Bad Gateway\n" + why + "\n");
  EXPECT_EQ(r->head.content_length, r->body.size());
  EXPECT_TRUE(stream().fin);
  ASSERT_TRUE(result_);
  EXPECT_TRUE(result_->failed);
  EXPECT_EQ(result_->status, 502);
  EXPECT_GE(transport_.closes, 1);  // closed (close() is idempotent), never released
  EXPECT_EQ(transport_.releases, 0);
}

TEST_F(ExchangeCore, RefusedConnectionIsAnInBand502) {
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  ex.on_connect_failed("connection refused");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 502);
  EXPECT_EQ(r->head.headers[0].second, "upstream refused: connection refused (127.0.0.1:8080)");
  ASSERT_TRUE(result_);
  EXPECT_EQ(result_->error, "upstream refused: connection refused (127.0.0.1:8080)");
}

// A response whose reads come back full gets reads twice as large, up to max_read_chunk; one that
// does not (a short read: the upstream had no more) keeps the size it has.
TEST_F(ExchangeCore, ReadsGrowWhileTheUpstreamKeepsThemFull) {
  ExchangeLimits limits;
  limits.read_chunk = 1024;
  limits.max_read_chunk = 4096;
  limits.wt_chunk = 4096;
  limits.decoder.input_buffer = 4096;
  auto& ex = make(request("GET", "/"), limits);
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  const size_t kBody = 64 * 1024;
  std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(kBody) + "\r\n\r\n";
  wire.append(kBody, 'b');
  std::vector<size_t> asked;
  auto read_one = [&](size_t n) {
    ASSERT_TRUE(transport_.read_max);
    asked.push_back(*transport_.read_max);
    const size_t take = std::min(n, *transport_.read_max);
    transport_.read_max.reset();
    ex.on_read(bytes(std::string_view(wire).substr(0, take)), false, {});
    wire.erase(0, take);
  };
  read_one(SIZE_MAX);  // full: 1024
  read_one(SIZE_MAX);  // full: 2048
  read_one(100);       // short: stays at 4096
  read_one(SIZE_MAX);  // 4096, full: stays (the ceiling)
  read_one(SIZE_MAX);
  EXPECT_EQ(asked, (std::vector<size_t>{1024, 2048, 4096, 4096, 4096}));
  while (transport_.read_max && !wire.empty()) read_one(SIZE_MAX);
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(session_.response(kId)->body.size(), kBody);
}

TEST_F(ExchangeCore, UpstreamIsReadOnlyWhileTheStreamTakesBytes) {
  ExchangeLimits limits;
  limits.wt_chunk = 4;
  auto& ex = make(request("GET", "/"), limits);
  session_.capacity = 0;
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  // The stream takes nothing: after the head and the first slice, no more reads are asked for.
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789";
  EXPECT_EQ(transport_.send(wire.substr(0, 40)), "");
  EXPECT_FALSE(transport_.read_max);
  EXPECT_TRUE(stream().out.empty());
  // A little capacity at a time: each grant is used in order; reading resumes only once all of the
  // decoded bytes are gone.
  std::string rest = wire.substr(40);
  for (int i = 0; i < 100 && !stream().fin; ++i) {
    session_.capacity = 3;
    ex.on_writable();
    if (transport_.read_max) rest = transport_.send(rest);
  }
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(session_.response(kId)->body, "0123456789");
  EXPECT_EQ(transport_.releases, 1);
}

TEST_F(ExchangeCore, RequestBodyWaitsForTheUpstreamToTakeIt) {
  auto& ex = make(request("PUT", "/f", true, 8));
  ex.start(bytes("1234"), false);
  EXPECT_EQ(stream().consumed, 0u);  // not connected: held, not consumed
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_TRUE(transport_.writing->ends_with("Content-Length: 8\r\n\r\n1234"));
  ex.on_body(bytes("5678"), false);  // complete by its length: no FIN needed
  EXPECT_EQ(stream().consumed, 0u);
  transport_.written();
  EXPECT_EQ(stream().consumed, 4u);
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "5678");
  transport_.written();
  EXPECT_EQ(stream().consumed, 8u);
  EXPECT_FALSE(transport_.writing);
  transport_.send("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
  ASSERT_TRUE(result_);
  EXPECT_EQ(result_->request_bytes, 8u);
  EXPECT_EQ(transport_.releases, 1);
}

TEST_F(ExchangeCore, HeadResponseHasNoBodyWhateverItsLength) {
  auto& ex = make(request("HEAD", "/big"));
  ex.start({}, true);
  transport_.connected();
  EXPECT_EQ(transport_.writing->rfind("HEAD /big HTTP/1.1\r\n", 0), 0u);
  transport_.written();
  transport_.send("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.content_length, 1000u);
  EXPECT_FALSE(r->head.has_body);
  EXPECT_EQ(r->body, "");
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(transport_.releases, 1);
}

TEST_F(ExchangeCore, ReusedConnectionClosedBeforeAnsweringIsReplayedOnce) {
  transport_.pooled = true;
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  EXPECT_EQ(transport_.connects, 1);
  transport_.written();
  transport_.send("", true);  // the idle connection had been closed by the upstream
  EXPECT_EQ(transport_.connects, 2);
  EXPECT_EQ(transport_.closes, 1);
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(transport_.writing->rfind("GET / HTTP/1.1\r\n", 0), 0u);
  transport_.written();
  transport_.send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(session_.response(kId)->body, "ok");
  ASSERT_TRUE(result_);
  EXPECT_FALSE(result_->reused_connection);
  EXPECT_FALSE(result_->failed);
}

TEST_F(ExchangeCore, APostOnADeadReusedConnectionIsNotReplayed) {
  // The upstream may have run it before the connection died: sending it again could run it twice.
  for (const char* method : {"POST", "PATCH"}) {
    transport_ = {};
    result_.reset();
    transport_.pooled = true;
    auto& ex = make(request(method, "/order"));
    ex.start({}, true);
    transport_.written();
    transport_.send("", true);
    EXPECT_EQ(transport_.connects, 1) << method;
    ASSERT_TRUE(result_) << method;
    EXPECT_TRUE(result_->failed);
    EXPECT_EQ(session_.response(kId)->head.status, 502) << method;
    session_.streams.clear();
  }
}

TEST_F(ExchangeCore, IdempotentMethodsAndRefusedRequestsAreReplayed) {
  for (const char* method : {"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "POST"}) {
    transport_ = {};
    result_.reset();
    transport_.pooled = true;
    transport_.refused = std::string_view(method) == "POST";  // e.g. REFUSED_STREAM: never processed
    auto& ex = make(request(method, "/x"));
    ex.start({}, true);
    transport_.written();
    transport_.send("", true);
    EXPECT_EQ(transport_.connects, 2) << method;
    transport_.connected();
    ASSERT_TRUE(transport_.writing) << method;
    EXPECT_EQ(transport_.writing->rfind(std::string(method) + " /x HTTP/1.1\r\n", 0), 0u);
    session_.streams.clear();
  }
}

// --- WebSocket (switching protocols) ------------------------------------------------------------------

tunnel::RequestHead websocket_request() {
  auto h = request("GET", "/ws", true);  // the bytes after the 101 are the request body
  h.headers = {{"sec-websocket-key", "k"}, {"upgrade", "websocket"}};
  return h;
}
constexpr std::string_view kWebSocketHead =
    "GET /ws HTTP/1.1\r\nHost: app.localhost:4433\r\nsec-websocket-key: k\r\n"
    "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
constexpr std::string_view kSwitched =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Accept: a\r\n\r\n";

TEST_F(ExchangeCore, WebSocketSwitchRelaysRawBytesBothWaysAndHalfCloses) {
  auto& ex = make(websocket_request());
  ex.start(bytes("early"), false);
  transport_.connected();
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, kWebSocketHead) << "the client's bytes wait for the 101";
  transport_.written();
  EXPECT_FALSE(transport_.writing);
  EXPECT_EQ(stream().consumed, 0u);

  EXPECT_EQ(transport_.send(std::string(kSwitched) + "\x81\x02up"), "");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 101);
  EXPECT_TRUE(r->head.has_body);
  EXPECT_EQ(r->head.headers, (tunnel::HeaderPairs{{"sec-websocket-accept", "a"}}));
  EXPECT_EQ(r->body, "\x81\x02up");
  EXPECT_FALSE(stream().fin);
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "early") << "unframed, once switched";
  transport_.written();
  EXPECT_EQ(stream().consumed, 5u);
  ex.on_body(bytes("\x82\x01z"), false);
  ASSERT_TRUE(transport_.writing);
  EXPECT_EQ(*transport_.writing, "\x82\x01z");
  transport_.written();

  // The client's direction ends first: EOF upstream, the upstream's bytes go on.
  ex.on_body({}, true);
  EXPECT_EQ(transport_.shutdowns, 1);
  EXPECT_EQ(transport_.closes, 0);
  EXPECT_FALSE(ex.finished());
  transport_.send("tail");
  EXPECT_EQ(session_.response(kId)->body, "\x81\x02uptail");
  transport_.send("", true);
  EXPECT_TRUE(stream().fin);
  EXPECT_TRUE(ex.finished());
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_EQ(transport_.releases, 0) << "a switched connection is never pooled";
  ASSERT_TRUE(result_);
  EXPECT_FALSE(result_->failed) << result_->error;
  EXPECT_EQ(result_->status, 101);
  EXPECT_EQ(result_->request_bytes, 8u);
}

TEST_F(ExchangeCore, WebSocketUpstreamEndingFirstLeavesTheClientDirectionOpen) {
  auto& ex = make(websocket_request());
  ex.start({}, false);
  transport_.connected();
  transport_.written();
  transport_.send(std::string(kSwitched) + "bye", true);
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(session_.response(kId)->body, "bye");
  EXPECT_FALSE(stream().stopped) << "the client's bytes are still wanted";
  EXPECT_EQ(transport_.closes, 0);
  EXPECT_FALSE(ex.finished());
  ex.on_body(bytes("last"), false);
  ASSERT_TRUE(transport_.writing);
  transport_.written();
  ex.on_body({}, true);
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_EQ(transport_.shutdowns, 0) << "closed outright: both directions are over";
  EXPECT_TRUE(ex.finished());
  EXPECT_FALSE(result_->failed) << result_->error;
  EXPECT_EQ(transport_.upstream, std::string(kWebSocketHead) + "last");
}

TEST_F(ExchangeCore, WebSocketDeclinedIsANormalResponseAndTheHeldBytesAreDropped) {
  auto& ex = make(websocket_request());
  ex.start(bytes("early"), false);
  transport_.connected();
  transport_.written();
  transport_.send("HTTP/1.1 426 Upgrade Required\r\nContent-Length: 2\r\n\r\nno");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 426);
  EXPECT_EQ(r->body, "no");
  EXPECT_TRUE(stream().fin);
  EXPECT_EQ(stream().consumed, 5u) << "the held bytes are credited, never written";
  EXPECT_EQ(stream().stopped, 0u);
  EXPECT_EQ(transport_.upstream, kWebSocketHead);
  EXPECT_EQ(transport_.releases, 0) << "an upgrade request's connection is not reused";
  EXPECT_EQ(transport_.closes, 1);
  EXPECT_TRUE(ex.finished());
}

}  // namespace
}  // namespace wtmesh::agent

namespace wtmesh::agent {
namespace {

// The session feature `trailers` (docs/protocol.md §4.1): interim heads and a framed body.
TEST_F(ExchangeCore, WithTheTrailersFeatureInterimHeadsAndTrailersAreSent) {
  ExchangeLimits limits;
  limits.trailers = true;
  auto& ex = make(request("GET", "/"), limits);
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  transport_.send(
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  const auto& out = stream().out;
  tunnel::HeadReader<tunnel::ResponseHead> r100, r103, rfinal;
  tunnel::ResponseHead h100, h103, head;
  ASSERT_EQ(r100.feed(out, h100), tunnel::WireError::kNone);
  EXPECT_EQ(h100.status, 100);
  auto rest = r100.take_body();
  ASSERT_EQ(r103.feed(rest, h103), tunnel::WireError::kNone);
  EXPECT_EQ(h103.status, 103);
  EXPECT_EQ(h103.headers, (tunnel::HeaderPairs{{"link", "</a>"}}));
  rest = r103.take_body();
  ASSERT_EQ(rfinal.feed(rest, head), tunnel::WireError::kNone);
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.framed);
  EXPECT_EQ(rfinal.take_body(), (std::vector<uint8_t>{0x05, 'h', 'e', 'l', 'l', 'o'}));
  EXPECT_FALSE(stream().fin);
  const size_t before = out.size();
  transport_.send("0\r\nX-Sum: 1\r\n\r\n");
  ASSERT_TRUE(stream().fin);
  EXPECT_EQ(std::vector<uint8_t>(out.begin() + static_cast<std::ptrdiff_t>(before), out.end()),
            (std::vector<uint8_t>{0x00, 0x09, 0x01, 0x05, 'x', '-', 's', 'u', 'm', 0x01, '1'}));
  ASSERT_TRUE(result_);
  EXPECT_EQ(result_->response_bytes, 5u);  // data only, not framing
  EXPECT_EQ(transport_.releases, 1);
}

TEST_F(ExchangeCore, WithoutTheFeatureInterimHeadsAreDroppedAndBodiesRaw) {
  auto& ex = make(request("GET", "/"));
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  transport_.send(
      "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n");
  auto r = session_.response(kId);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->head.status, 200);
  EXPECT_FALSE(r->head.framed);
  EXPECT_EQ(r->body, "hello");
  EXPECT_TRUE(stream().fin);
}

TEST_F(ExchangeCore, ATrailerSectionOverTheTunnelLimitAbortsTheStream) {
  ExchangeLimits limits;
  limits.trailers = true;
  auto& ex = make(request("GET", "/"), limits);
  ex.start({}, true);
  transport_.connected();
  transport_.written();
  std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n";
  for (size_t i = 0; i <= tunnel::kMaxHeaderCount; ++i) wire += "t" + std::to_string(i) + ": v\r\n";
  transport_.send(wire + "\r\n");
  EXPECT_EQ(stream().reset, tunnel::kStreamUpstreamFailed) << "257 trailer fields do not fit a section";
  EXPECT_FALSE(stream().fin);
  ASSERT_TRUE(result_);
  EXPECT_TRUE(result_->failed);
  EXPECT_NE(result_->error.find("trailer"), std::string::npos) << result_->error;
}

}  // namespace
}  // namespace wtmesh::agent
