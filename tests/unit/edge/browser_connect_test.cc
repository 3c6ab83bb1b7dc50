// Browsers as mesh clients (edge/browser_connect.h): the /connect/NAME?token=TOKEN path, the
// refusal mapping, and a browser session's bidi streams bridged by ConnectBridges onto a tcp tunnel's
// stream (a scripted directory), with the per-session cap, uni streams, unknown names, the session's
// end and the token's expiry; the page's telemetry reports on uni streams (edge/browser_telemetry.h).
#include "edge/browser_connect.h"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "edge/route_table.h"
#include "fakes.h"
#include "tunnel/tcp_stream.h"
#include "tunnel/telemetry.h"
#include "tunnel/token.h"

namespace wtmesh::edge {
namespace {

using test::bytes;
using test::FakeDirectory;
using test::FakeSession;
using test::str;
using tunnel::ConnectStatus;

std::optional<BrowserConnectRequest> parse(std::string_view path, int* status = nullptr,
                                           std::string* error = nullptr) {
  int s = 0;
  std::string e;
  auto r = parse_browser_connect_path(path, "localhost", status ? status : &s, error ? error : &e);
  return r;
}

TEST(BrowserConnectPath, NameAndToken) {
  auto r = parse("/connect/echo?token=abc.DEF-_.123");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "echo.localhost");
  EXPECT_EQ(r->token, "abc.DEF-_.123");
  r = parse("/connect/Db.Mesh.Example?x=1&token=t&y");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->name, "db.mesh.example");  // lower-cased, a dotted name kept as is
  EXPECT_EQ(r->token, "t");
  EXPECT_TRUE(is_browser_connect_path("/connect/x"));
  EXPECT_FALSE(is_browser_connect_path("/connect"));
  EXPECT_FALSE(is_browser_connect_path("/echo"));
}

TEST(BrowserConnectPath, Refusals) {
  struct Case {
    const char* path;
    int status;
  } cases[] = {
      {"/connect/echo", 401},                  // no query
      {"/connect/echo?tok=a", 401},            // no token key
      {"/connect/echo?token=", 401},           // empty
      {"/connect/echo?token", 401},            // no value
      {"/connect/echo?token=a%2Eb", 401},      // percent-encoding is not a token
      {"/connect/echo?token=a b", 401},        // a space
      {"/connect/echo?token=a&token=b", 400},  // twice
      {"/connect/?token=a", 400},              // no name
      {"/connect/a/b?token=a", 400},           // a path under the name
      {"/connect/a..b?token=a", 400},          // an empty label
      {"/connect/*.x?token=a", 400},           // no wildcards
      {"/connect/a_b?token=a", 400},           // not a host name
      {"/connect/-a?token=a", 400},
      {"/echo?token=a", 404},  // not the endpoint
  };
  for (const auto& c : cases) {
    int status = 0;
    std::string error;
    EXPECT_FALSE(parse(c.path, &status, &error)) << c.path;
    EXPECT_EQ(status, c.status) << c.path << ": " << error;
    EXPECT_FALSE(error.empty());
  }
}

TEST(BrowserConnectPath, LimitsAndTheTokenStaysOutOfErrors) {
  int status = 0;
  std::string error;
  const std::string secret = "eyJ.sekrit.sig";
  // A name of 254 bytes with the domain: refused, and the error does not quote the token.
  std::string name(63, 'a');
  name += "." + std::string(63, 'b') + "." + std::string(63, 'c') + "." + std::string(63, 'd');
  EXPECT_FALSE(parse("/connect/" + name + "?token=" + secret, &status, &error));
  EXPECT_EQ(status, 400);
  EXPECT_EQ(error.find("sekrit"), std::string::npos);
  // The longest token is accepted, one byte more is not.
  const std::string at_limit(tunnel::kMaxTokenSize, 'a');
  EXPECT_TRUE(parse("/connect/x?token=" + at_limit));
  EXPECT_FALSE(parse("/connect/x?token=" + at_limit + "a", &status, &error));
  EXPECT_EQ(status, 401);
  // The whole path is bounded.
  EXPECT_FALSE(parse("/connect/x?token=a&pad=" + std::string(kMaxConnectPath, 'p'), &status, &error));
  EXPECT_EQ(status, 414);
  for (const char* bad : {"/connect/x?token=%sekrit", "/connect/x?token=sekrit&token=sekrit"}) {
    EXPECT_FALSE(parse(bad, &status, &error));
    EXPECT_EQ(error.find("sekrit"), std::string::npos) << error;
  }
}

TEST(BrowserConnectPath, RefusalMapping) {
  EXPECT_EQ(http_status_of(ConnectStatus::kNotInScope), 403);
  EXPECT_EQ(http_status_of(ConnectStatus::kUnknown), 404);
  EXPECT_EQ(http_status_of(ConnectStatus::kOffline), 503);
  EXPECT_EQ(http_status_of(ConnectStatus::kLimit), 503);
  EXPECT_EQ(http_status_of(ConnectStatus::kUnreachable), 502);
  EXPECT_EQ(http_status_of(ConnectStatus::kInvalid), 400);
  EXPECT_EQ(stream_code_of(ConnectStatus::kNotInScope), 0x11u);
  EXPECT_EQ(stream_code_of(ConnectStatus::kUnknown), 0x12u);
  EXPECT_EQ(stream_code_of(ConnectStatus::kOffline), 0x13u);
  EXPECT_EQ(stream_code_of(ConnectStatus::kLimit), 0x14u);
  EXPECT_EQ(stream_code_of(ConnectStatus::kInvalid), 0x16u);
  for (uint64_t s = 1; s <= 6; ++s) EXPECT_LT(stream_code_of(static_cast<ConnectStatus>(s)), 256u);
}

// FakeDirectory answers `tcp` lookups from the same scripted routes.
class TcpDirectory final : public TunnelDirectory {
 public:
  explicit TcpDirectory(FakeDirectory& d) : d_(d) {}
  uint64_t route(std::string_view host, RouteEvents* events) override { return d_.route(host, events); }
  uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) override {
    if (type == kTcp) return d_.route(host, events);
    events->on_route(RouteLookup{});
    return 0;
  }
  void cancel_route(uint64_t t) override { d_.cancel_route(t); }
  OpenStatus open_request(const RouteLookup& r, std::string_view c, RequestStreamEvents* e,
                          StreamRef* out) override {
    return d_.open_request(r, c, e, out);
  }
  size_t write(const StreamRef& r, std::span<const uint8_t> b, bool fin) override {
    return d_.write(r, b, fin);
  }
  size_t send_capacity(const StreamRef& r) override { return d_.send_capacity(r); }
  void consume(const StreamRef& r, size_t n) override { d_.consume(r, n); }
  void cancel(const StreamRef& r, uint32_t code) override { d_.cancel(r, code); }
  void release(const StreamRef& r) override { d_.release(r); }

 private:
  FakeDirectory& d_;
};

class BrowserSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.add_route("svc.localhost", 9);
    open("svc.localhost");
  }
  void open(const std::string& name,
            std::chrono::system_clock::time_point expires = std::chrono::system_clock::now() +
                                                            std::chrono::hours(1)) {
    browser_ = std::make_unique<BrowserSession>(bridges_, nullptr, name, "client", expires, 2);
    session_.set_handler(browser_.get());
    browser_->on_attached(session_);
  }
  // The browser opens bidi stream `id` and sends `text`.
  void send(wt::StreamId id, std::string_view text, bool fin = false) {
    browser_->on_incoming_stream(id, true);
    browser_->on_stream_data(id, bytes(text), fin);
    poll();
  }
  // Runs what is posted (an io_context that ran out of work stops until restarted).
  void poll() {
    io_.restart();
    io_.poll();
  }
  std::string tunnel_bytes(wt::StreamId tunnel_stream) {
    const auto head = tunnel::encode_tcp_stream_head({9, {}, {}});
    const auto& w = dir_.streams[tunnel_stream].written;
    EXPECT_GE(w.size(), head.size());
    EXPECT_TRUE(std::equal(head.begin(), head.end(), w.begin()))
        << "the stream starts with the tcp-stream head";
    return std::string(w.begin() + static_cast<ptrdiff_t>(head.size()), w.end());
  }

  boost::asio::io_context io_;
  FakeDirectory dir_;
  TcpDirectory tcp_{dir_};
  ConnectBridges bridges_{io_, tcp_, {}};
  FakeSession session_;
  std::unique_ptr<BrowserSession> browser_;
};

TEST_F(BrowserSessionTest, EachBidiStreamIsOneConnectionBothWays) {
  send(0, "hello\n");
  ASSERT_EQ(dir_.open_calls, 1);
  const wt::StreamId t = dir_.last;
  EXPECT_EQ(tunnel_bytes(t), "hello\n");
  EXPECT_EQ(session_.streams[0].consumed, 6u) << "credit goes back once the tunnel stream took the bytes";
  // The service answers and closes; the browser's stream gets the bytes and the FIN.
  dir_.streams[t].events->on_response_data(bytes("HELLO\n"), true);
  poll();
  EXPECT_EQ(str(session_.streams[0].written), "HELLO\n");
  EXPECT_TRUE(session_.streams[0].fin);
  EXPECT_EQ(dir_.streams[t].consumed, 6u);
  // The browser's FIN ends the other direction: the bridge is done cleanly.
  browser_->on_stream_data(0, {}, true);
  poll();
  EXPECT_TRUE(dir_.streams[t].fin);
  EXPECT_FALSE(dir_.streams[t].cancelled);
  EXPECT_EQ(bridges_.bridge_count(), 0u);
  EXPECT_FALSE(session_.streams[0].reset);
  // Two more at once, each its own tunnel stream.
  send(4, "a");
  send(8, "b");
  EXPECT_EQ(dir_.open_calls, 3);
  EXPECT_EQ(bridges_.bridge_count(), 2u);
  EXPECT_NE(dir_.last_client, "");
}

TEST_F(BrowserSessionTest, TheCapRefusesTheThirdStreamAndUniStreams) {
  send(0, "a");
  send(4, "b");
  send(8, "c");
  EXPECT_EQ(dir_.open_calls, 2);
  EXPECT_EQ(session_.streams[8].reset, stream_code_of(ConnectStatus::kLimit));
  EXPECT_EQ(session_.streams[8].stop, stream_code_of(ConnectStatus::kLimit));
  EXPECT_EQ(session_.streams[8].consumed, 1u) << "a refused stream's bytes are credited";
  browser_->on_incoming_stream(2, false);
  EXPECT_TRUE(session_.streams[2].stop);
  // One ends (reset by the browser): room for another.
  browser_->on_stream_reset(0, 0);
  browser_->on_stream_closed(0);
  poll();
  EXPECT_TRUE(dir_.streams[1].cancelled) << "the browser's reset reaches the service";
  send(12, "d");
  EXPECT_EQ(dir_.open_calls, 3);
}

TEST_F(BrowserSessionTest, TelemetryReportsOnUniStreamsReachTheBoardUntilTheSessionEnds) {
  EdgeMetrics metrics;
  auto board = std::make_shared<BrowserTelemetry>(&metrics);
  browser_ =
      std::make_unique<BrowserSession>(bridges_, nullptr, "svc.localhost", "page",
                                       std::chrono::system_clock::now() + std::chrono::hours(1), 2, board);
  session_.set_handler(browser_.get());
  browser_->on_attached(session_);
  tunnel::TelemetryReport r;
  r.rtt_us = 1500;
  r.bytes_sent = 10;
  r.version = "wtmesh-connect-page/1";
  const auto wire = tunnel::encode_telemetry(r);
  // In two pieces, the FIN with the second.
  browser_->on_incoming_stream(2, false);
  browser_->on_stream_data(2, std::span(wire).first(3), false);
  EXPECT_TRUE(board->snapshot(std::chrono::steady_clock::now()).empty()) << "nothing before the FIN";
  browser_->on_stream_data(2, std::span(wire).subspan(3), true);
  EXPECT_EQ(session_.streams[2].consumed, wire.size());
  EXPECT_FALSE(session_.streams[2].stop);
  auto snap = board->snapshot(std::chrono::steady_clock::now());
  ASSERT_EQ(snap.size(), 1u);
  EXPECT_EQ(snap[0].agent, "browser/page#1");
  EXPECT_EQ(snap[0].report, r);
  EXPECT_EQ(browser_->telemetry_streams(), 0u);
  const std::string text = metrics.render({}, snap);
  EXPECT_NE(text.find("wtmesh_agent_rtt_seconds{agent=\"browser/page#1\"} 0.0015"), std::string::npos)
      << text;
  EXPECT_NE(text.find("wtmesh_telemetry_reports_total{result=\"accepted\"} 1"), std::string::npos) << text;
  // The session ends: its report goes.
  browser_->on_closed(0, "done");
  EXPECT_TRUE(board->snapshot(std::chrono::steady_clock::now()).empty());
  EXPECT_EQ(board->session_count(), 0u);
}

TEST_F(BrowserSessionTest, TelemetryStreamsAreCappedInSizeCountAndForm) {
  auto board = std::make_shared<BrowserTelemetry>(nullptr);
  browser_ =
      std::make_unique<BrowserSession>(bridges_, nullptr, "svc.localhost", "page",
                                       std::chrono::system_clock::now() + std::chrono::hours(1), 2, board);
  session_.set_handler(browser_.get());
  browser_->on_attached(session_);
  // Over 1024 bytes: refused with STOP_SENDING 0x16, counted, the rest of its bytes credited.
  const std::vector<uint8_t> big(tunnel::kMaxTelemetrySize + 1, 0x01);
  browser_->on_incoming_stream(2, false);
  browser_->on_stream_data(2, big, false);
  EXPECT_EQ(session_.streams[2].stop, stream_code_of(ConnectStatus::kInvalid));
  browser_->on_stream_data(2, bytes("more"), true);
  EXPECT_EQ(session_.streams[2].consumed, big.size() + 4);
  EXPECT_EQ(board->invalid(), 1u);
  // Not a report: refused likewise.
  browser_->on_incoming_stream(6, false);
  browser_->on_stream_data(6, bytes("\x09junk"), true);
  EXPECT_EQ(session_.streams[6].stop, stream_code_of(ConnectStatus::kInvalid));
  EXPECT_EQ(board->invalid(), 2u);
  // Two arriving at once at most; a third waits for none of them: refused (limit).
  browser_->on_incoming_stream(10, false);
  browser_->on_incoming_stream(14, false);
  browser_->on_incoming_stream(18, false);
  EXPECT_FALSE(session_.streams[10].stop);
  EXPECT_FALSE(session_.streams[14].stop);
  EXPECT_EQ(session_.streams[18].stop, stream_code_of(ConnectStatus::kLimit));
  // A reset one frees its place.
  browser_->on_stream_reset(10, 0);
  browser_->on_incoming_stream(22, false);
  EXPECT_FALSE(session_.streams[22].stop);
  EXPECT_EQ(browser_->telemetry_streams(), 2u);
  EXPECT_EQ(board->accepted(), 0u);
  EXPECT_TRUE(board->snapshot(std::chrono::steady_clock::now()).empty());
}

TEST_F(BrowserSessionTest, AServiceResetResetsTheBrowserStream) {
  send(0, "a");
  dir_.streams[dir_.last].events->on_stream_aborted(3, "reset");
  poll();
  EXPECT_EQ(session_.streams[0].reset, kBrowserStreamAborted);
  EXPECT_EQ(session_.streams[0].stop, kBrowserStreamAborted);
}

TEST_F(BrowserSessionTest, AnUnknownNameResetsTheStreamWithItsCode) {
  open("nosuch.localhost");
  send(0, "a");
  EXPECT_EQ(dir_.open_calls, 0);
  EXPECT_EQ(session_.streams[0].reset, stream_code_of(ConnectStatus::kUnknown));
  EXPECT_EQ(session_.streams[0].consumed, 1u);
}

TEST_F(BrowserSessionTest, AnOfflineAgentOrNoStreamToSpare) {
  dir_.gone = true;
  send(0, "a");
  EXPECT_EQ(session_.streams[0].reset, stream_code_of(ConnectStatus::kOffline));
  dir_.gone = false;
  dir_.busy = 1;
  send(4, "a");
  EXPECT_EQ(session_.streams[4].reset, stream_code_of(ConnectStatus::kLimit));
}

TEST_F(BrowserSessionTest, TheSessionsEndCancelsItsConnections) {
  send(0, "a");
  send(4, "b");
  session_.peer_closes(0, "bye");
  poll();
  EXPECT_TRUE(browser_->closed());
  EXPECT_TRUE(dir_.streams[1].cancelled);
  EXPECT_TRUE(dir_.streams[5].cancelled);
  EXPECT_EQ(bridges_.bridge_count(), 0u);
}

TEST_F(BrowserSessionTest, TheTokensExpiryClosesTheSession) {
  const auto now = std::chrono::system_clock::now();
  open("svc.localhost", now + std::chrono::seconds(5));
  browser_->on_tick(now);
  EXPECT_FALSE(session_.closed);
  browser_->on_tick(now + std::chrono::seconds(5));
  EXPECT_TRUE(session_.closed);
  EXPECT_EQ(session_.close_code, kBrowserCloseTokenExpired);
}

TEST_F(BrowserSessionTest, BackpressureTheBrowsersBytesWaitForTheTunnelStream) {
  dir_.capacity = 4;
  send(0, "0123456789");
  const wt::StreamId t = dir_.last;
  EXPECT_EQ(session_.streams[0].consumed, 0u) << "no credit back while the tunnel stream holds only part";
  dir_.streams[t].capacity = 1 << 20;
  dir_.streams[t].events->on_request_writable();
  poll();
  EXPECT_EQ(tunnel_bytes(t), "0123456789");
  EXPECT_EQ(session_.streams[0].consumed, 10u);
}

// Datagrams wait (bounded) while the session's udp flow opens; a refusal drops them, and the next
// open waits kRetryAfter. UdpConnects without UDP tunnels refuses every open `unknown`, after a post.
TEST_F(BrowserSessionTest, DatagramsHeldWhileTheFlowOpensAreBoundedAndARefusalDropsThem) {
  UdpConnects udp(io_, tcp_, nullptr);
  browser_ = std::make_unique<BrowserSession>(bridges_, &udp, "svc.localhost", "client",
                                              std::chrono::system_clock::now() + std::chrono::hours(1), 2);
  session_.set_handler(browser_.get());
  browser_->on_attached(session_);
  for (size_t i = 0; i < BrowserSession::kMaxHeldDatagrams + 3; ++i) browser_->on_datagram(bytes("ping"));
  EXPECT_EQ(udp.open_count(), 1u) << "one flow per session";
  EXPECT_EQ(browser_->held_datagrams(), BrowserSession::kMaxHeldDatagrams);
  EXPECT_EQ(browser_->dropped_datagrams(), 3u);
  poll();  // refused: unknown
  EXPECT_EQ(browser_->held_datagrams(), 0u);
  EXPECT_EQ(browser_->dropped_datagrams(), BrowserSession::kMaxHeldDatagrams + 3);
  browser_->on_datagram(bytes("ping"));
  EXPECT_EQ(udp.open_count(), 0u) << "no new open before kRetryAfter";
  EXPECT_EQ(browser_->dropped_datagrams(), BrowserSession::kMaxHeldDatagrams + 4);
  EXPECT_TRUE(session_.datagrams.empty());
  // The bytes bound: one large datagram fills what may wait.
  browser_ = std::make_unique<BrowserSession>(bridges_, &udp, "svc.localhost", "client",
                                              std::chrono::system_clock::now() + std::chrono::hours(1), 2);
  session_.set_handler(browser_.get());
  browser_->on_attached(session_);
  browser_->on_datagram(std::vector<uint8_t>(BrowserSession::kMaxHeldBytes, 1));
  browser_->on_datagram(bytes("x"));
  EXPECT_EQ(browser_->held_datagrams(), 1u);
  EXPECT_EQ(browser_->dropped_datagrams(), 1u);
  browser_.reset();  // closes its open flow
  EXPECT_EQ(udp.open_count(), 0u);
  poll();
}

TEST_F(BrowserSessionTest, WithoutUdpTunnelsDatagramsAreDropped) {
  browser_->on_datagram(bytes("ping"));
  EXPECT_EQ(browser_->dropped_datagrams(), 1u);
  EXPECT_EQ(browser_->held_datagrams(), 0u);
}

}  // namespace
}  // namespace wtmesh::edge
