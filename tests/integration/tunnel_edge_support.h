// Helpers for the edge's tunnel integration tests (tests/integration/tunnel_edge_*.cc): a real
// EdgeServer on its own thread, a scripted test agent over our WebTransport client (agent::WtClient +
// tunnel/wire.h), and blocking public clients (GnuTLS over a TCP socket, or curl) meant to run on a
// helper thread while the test thread pumps the agent's io_context.
#pragma once

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../support/edge_thread.h"
#include "../support/http_response.h"
#include "../support/response_head.h"
#include "../support/run_until.h"
#include "../support/temp_dir.h"
#include "agent/wt_client.h"
#include "edge/edge_server.h"
#include "edge/public_exchange.h"
#include "edge/tunnel_service.h"
#include "tunnel/keystore.h"
#include "tunnel/wire.h"
#include "wt/h3_session.h"

namespace wtmesh::tunnel_edge_test {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
using namespace std::chrono_literals;
using wtmesh::test::EdgeThread;
using wtmesh::test::parse_response;
using wtmesh::test::ParsedResponse;
using wtmesh::test::TempDir;

// --- the test agent -------------------------------------------------------------------------------

// Plays the agent with the protocol's wire formats: opens the control stream, registers, answers
// PINGs, and records request streams; the test answers them.
class TestAgent final : public wt::SessionHandler {
 public:
  struct Request {
    tunnel::HeadReader<tunnel::RequestHead> reader;
    tunnel::RequestHead head;
    bool has_head = false;
    std::string body;
    bool fin = false;
    std::optional<uint32_t> reset, stop;
    bool closed = false;  // both directions over (e.g. the edge stopped reading after its FIN)
    // The edge abandoned the exchange. When the edge had already sent its FIN, only STOP_SENDING
    // can say so, and ngtcp2 does not surface that to the application: the stream just closes.
    bool cancelled() const { return reset.has_value() || stop.has_value() || closed; }
  };

  bool answer_pings = true;
  bool auto_consume = true;
  // Called once per request stream when its head arrived, and once when its body ended (FIN).
  std::function<void(wt::StreamId, Request&)> on_head;
  std::function<void(wt::StreamId, Request&)> on_request;

  void on_attached(wt::Session& s) override { session = &s; }
  void on_ready() override {
    ready = true;
    control = *session->open_bidi_stream();
    const uint8_t kind = 0;
    session->write(control, {&kind, 1}, false);
  }
  void on_incoming_stream(wt::StreamId id, bool) override {
    requests[id];
    order.push_back(id);
  }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (id == control) {
      session->consume(id, data.size());
      std::vector<tunnel::ControlFrame> got;
      control_error = reader.feed(data, got);
      for (auto& f : got) {
        if (f.type == static_cast<uint64_t>(tunnel::ControlType::kPing) && answer_pings) {
          send_control(tunnel::ControlType::kPong, f.payload);
        }
        frames.push_back(std::move(f));
      }
      return;
    }
    Request& r = requests[id];
    bool new_head = false;
    if (!r.has_head) {
      if (r.reader.feed(data, r.head) == tunnel::WireError::kNone) {
        r.has_head = new_head = true;
        auto rest = r.reader.take_body();
        r.body.append(rest.begin(), rest.end());
      }
    } else {
      r.body.append(data.begin(), data.end());
    }
    const bool new_fin = fin && !r.fin;
    r.fin |= fin;
    if (auto_consume) session->consume(id, data.size());
    if (new_head && on_head) on_head(id, r);
    if (new_fin && r.has_head && on_request) on_request(id, r);
  }
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override { requests[id].reset = code; }
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override { requests[id].stop = code; }
  void on_stream_writable(wt::StreamId) override {}
  void on_stream_closed(wt::StreamId id) override { requests[id].closed = true; }
  void on_datagram(std::span<const uint8_t>) override {}
  void on_closed(uint32_t c, std::string_view r) override {
    if (session != nullptr) {
      status = session->response().status;
      for (const auto& [name, value] : session->response().headers) response_headers[name] = value;
    }
    closed = true;
    code = c;
    reason = std::string(r);
    session = nullptr;
  }

  void send_control(tunnel::ControlType type, const std::string& payload) {
    auto f = tunnel::encode_control_frame(type, payload);
    ASSERT_EQ(session->write(control, f, false), f.size());
  }
  void register_host(uint32_t id, const std::string& host) {
    send_control(tunnel::ControlType::kRegister,
                 json{{"id", id}, {"type", "http"}, {"hostname", host}, {"options", json::object()}}.dump());
  }
  // The first REGISTERED/REFUSED for `id`, if it arrived.
  std::optional<std::pair<uint64_t, json>> answer(uint32_t id) const {
    for (const auto& f : frames) {
      if (f.type != static_cast<uint64_t>(tunnel::ControlType::kRegistered) &&
          f.type != static_cast<uint64_t>(tunnel::ControlType::kRefused)) {
        continue;
      }
      json j = json::parse(f.payload);
      if (j["id"] == id) return std::make_pair(f.type, j);
    }
    return std::nullopt;
  }
  // Writes a response head (+ body) on a request stream; returns bytes written of the whole.
  size_t respond(wt::StreamId id, const tunnel::ResponseHead& head, std::string_view body, bool fin) {
    auto b = tunnel::encode_response_head(head);
    b.insert(b.end(), body.begin(), body.end());
    return session->write(id, b, fin);
  }
  size_t write(wt::StreamId id, std::string_view body, bool fin) {
    return session->write(id, {reinterpret_cast<const uint8_t*>(body.data()), body.size()}, fin);
  }

  wt::Session* session = nullptr;
  bool ready = false, closed = false;
  uint32_t code = 0;
  std::string reason;
  int status = 0;
  std::map<std::string, std::string> response_headers;
  wt::StreamId control = -1;
  tunnel::ControlReader reader;
  tunnel::WireError control_error = tunnel::WireError::kNone;
  std::vector<tunnel::ControlFrame> frames;
  std::map<wt::StreamId, Request> requests;
  std::vector<wt::StreamId> order;
};

inline tunnel::ResponseHead response(int status, std::optional<uint64_t> length, bool body = true,
                                     tunnel::HeaderPairs headers = {}) {
  return test::response_head(status, length, body, std::move(headers));
}

// --- public clients -------------------------------------------------------------------------------

// A blocking HTTP(S) client over a TCP socket to 127.0.0.1 (GnuTLS for HTTPS). Meant for a helper
// thread. `sni` empty: no SNI, and the certificate is checked for 127.0.0.1. `source`: the local
// address to connect from (another loopback address, e.g. "127.0.0.2", is another client for the
// edge's per-address limits); empty: the kernel's choice. No `ca`: plain TCP.
class PublicClient {
 public:
  PublicClient(uint16_t port, const std::filesystem::path* ca, const std::string& sni = "",
               const std::string& source = "") {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    if (!source.empty()) {
      sockaddr_in src{};
      src.sin_family = AF_INET;
      ::inet_pton(AF_INET, source.c_str(), &src.sin_addr);
      if (::bind(fd_, reinterpret_cast<sockaddr*>(&src), sizeof(src)) != 0) {
        error = "bind to " + source + " failed";
        return;
      }
    }
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      error = "connect failed";
      return;
    }
    timeval tv{0, 100 * 1000};  // reads wake up every 100 ms so deadlines are honoured
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (ca == nullptr) return;
    gnutls_certificate_allocate_credentials(&cred_);
    gnutls_certificate_set_x509_trust_file(cred_, ca->c_str(), GNUTLS_X509_FMT_PEM);
    gnutls_init(&s_, GNUTLS_CLIENT);
    gnutls_set_default_priority(s_);
    gnutls_credentials_set(s_, GNUTLS_CRD_CERTIFICATE, cred_);
    verify_host_ = sni.empty() ? "127.0.0.1" : sni;
    if (!sni.empty()) gnutls_server_name_set(s_, GNUTLS_NAME_DNS, sni.data(), sni.size());
    gnutls_session_set_verify_cert(s_, verify_host_.c_str(), 0);
    gnutls_datum_t alpn{reinterpret_cast<unsigned char*>(const_cast<char*>("http/1.1")), 8};
    gnutls_alpn_set_protocols(s_, &alpn, 1, 0);
    gnutls_transport_set_int(s_, fd_);
    const auto deadline = Clock::now() + 10s;
    int rv;
    do {
      rv = gnutls_handshake(s_);
    } while ((rv == GNUTLS_E_AGAIN || rv == GNUTLS_E_INTERRUPTED) && Clock::now() < deadline);
    if (rv < 0) error = std::string("TLS handshake: ") + gnutls_strerror(rv);
  }
  ~PublicClient() {
    if (s_) gnutls_deinit(s_);
    if (cred_) gnutls_certificate_free_credentials(cred_);
    if (fd_ >= 0) ::close(fd_);
  }
  bool ok() const { return error.empty(); }
  int fd() const { return fd_; }

  bool send(std::string_view data) {
    size_t off = 0;
    while (off < data.size()) {
      ssize_t n = s_ ? gnutls_record_send(s_, data.data() + off, data.size() - off)
                     : ::send(fd_, data.data() + off, data.size() - off, MSG_NOSIGNAL);
      if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) continue;
      if (n <= 0) return false;
      off += static_cast<size_t>(n);
    }
    return true;
  }
  // Reads until `done(received)` holds, EOF, or `timeout`. Returns whether `done` held.
  bool read_until(const std::function<bool(const std::string&)>& done,
                  std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    char buf[16384];
    while (!done(received)) {
      if (eof || Clock::now() >= deadline) return false;
      ssize_t n = s_ ? gnutls_record_recv(s_, buf, sizeof(buf)) : ::recv(fd_, buf, sizeof(buf), 0);
      if (s_ && (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)) continue;
      if (!s_ && n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        eof = true;
        continue;
      }
      received.append(buf, static_cast<size_t>(n));
    }
    return true;
  }
  bool read_until_eof(std::chrono::milliseconds timeout = 10s) {
    return read_until([this](const std::string&) { return eof; }, timeout) || eof;
  }
  // SHA-256 of the server's leaf (hex), for certificate checks.
  std::string peer_sha256() const {
    unsigned n = 0;
    const gnutls_datum_t* certs = s_ ? gnutls_certificate_get_peers(s_, &n) : nullptr;
    if (n == 0) return {};
    unsigned char d[32];
    size_t len = sizeof(d);
    gnutls_fingerprint(GNUTLS_DIG_SHA256, &certs[0], d, &len);
    std::string out;
    static const char* hex = "0123456789abcdef";
    for (size_t i = 0; i < len; ++i) (out += hex[d[i] >> 4]) += hex[d[i] & 15];
    return out;
  }

  std::string error;
  std::string received;
  bool eof = false;

 private:
  int fd_ = -1;
  gnutls_certificate_credentials_t cred_ = nullptr;
  gnutls_session_t s_ = nullptr;
  std::string verify_host_;
};

// Runs a shell command (e.g. curl) and returns its exit status and stdout.
struct CommandResult {
  int status = -1;
  std::string out;
};
inline CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* f = ::popen(cmd.c_str(), "r");
  if (!f) return r;
  char buf[65536];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) r.out.append(buf, n);
  r.status = ::pclose(f);
  return r;
}

// --- the fixture ----------------------------------------------------------------------------------

class TunnelEdgeTest : public ::testing::Test {
 protected:
  void SetUp() override { start_edge(); }
  void TearDown() override {
    clients_.clear();  // may still tell their agents the session ended
    agents_.clear();
    edge_.reset();
  }
  void start_edge(std::function<void(edge::EdgeOptions&)> tweak = {}) {
    edge::EdgeOptions opts;
    opts.listen = asio::ip::udp::endpoint(asio::ip::make_address("127.0.0.1"), 0);
    opts.state_dir = dir_.path();
    opts.domain = "localhost";
    if (tweak) tweak(opts);
    edge_ = std::make_unique<EdgeThread>(opts);
  }
  uint16_t port() const { return edge_->port(); }
  std::filesystem::path ca() const { return dir_.path() / "ca.pem"; }
  // A curl command line that trusts the edge's CA and resolves `host` to the edge. HTTP/1.1: these
  // tests read its framing and hop-by-hop handling (HTTP/2: tests/peers/http_tunnel_h2.sh).
  std::string curl(const std::string& args, const std::string& host = "app.localhost") const {
    return "curl -sS --http1.1 --max-time 20 --cacert " + ca().string() + " --resolve " + host + ":" +
           std::to_string(port()) + ":127.0.0.1 " + args;
  }
  std::string url(const std::string& path = "/", const std::string& host = "app.localhost") const {
    return "https://" + host + ":" + std::to_string(port()) + path;
  }

  // A token signed with the edge's own key (what `wtmesh token --state-dir` prints).
  std::string token(std::vector<std::string> hosts = {"app.localhost"}, std::chrono::seconds ttl = 600s,
                    std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
    return tunnel::KeyStore(dir_.path())
        .signing_key()
        .sign(tunnel::make_claims("tester", std::move(hosts), ttl, now));
  }

  std::unique_ptr<agent::WtClient> dial() {
    auto c = std::make_unique<agent::WtClient>(io_, quic::TlsClientContext::with_ca_file(ca()));
    std::string error;
    EXPECT_TRUE(c->dial({"127.0.0.1", port(), ""}, &error)) << error;
    return c;
  }
  // Opens /ingress-mesh with the given headers; the agent and its client live until TearDown.
  TestAgent& connect(const wt::HeaderPairs& headers) {
    auto a = std::make_unique<TestAgent>();
    TestAgent& ref = *a;
    agents_.push_back(std::move(a));
    clients_.push_back(dial());
    std::string error;
    EXPECT_NE(clients_.back()->open_session(std::string(tunnel::kSessionPath), headers, &ref, &error),
              nullptr)
        << error;
    return ref;
  }
  TestAgent& connect_with(const std::string& tok) {
    return connect(
        {{"authorization", "Bearer " + tok}, {"wtmesh-protocol", "1"}, {"user-agent", "test-agent"}});
  }
  // A ready agent with `host` registered as tunnel 1.
  TestAgent& agent_for(const std::string& host) {
    TestAgent& a = connect_with(token({host}));
    EXPECT_TRUE(run_until([&] { return a.ready || a.closed; }));
    EXPECT_TRUE(a.ready) << a.reason;
    a.register_host(1, host);
    EXPECT_TRUE(run_until([&] { return a.answer(1).has_value(); }));
    return a;
  }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = 10s) {
    return test::run_io_until(io_, done, limit, test::Turn::kOneHandler, std::chrono::milliseconds(2));
  }
  // Runs `fn` on a helper thread while pumping the agent's io_context; returns its result.
  template <typename Fn>
  auto in_background(Fn fn, std::chrono::milliseconds limit = 30s) {
    auto fut = std::async(std::launch::async, std::move(fn));
    EXPECT_TRUE(run_until([&] { return fut.wait_for(0s) == std::future_status::ready; }, limit));
    return fut.get();
  }

  TempDir dir_;
  std::unique_ptr<EdgeThread> edge_;
  asio::io_context io_;
  // Agents outlive their clients (a client may report its session's end to the handler).
  std::vector<std::unique_ptr<TestAgent>> agents_;
  std::vector<std::unique_ptr<agent::WtClient>> clients_;
};

}  // namespace wtmesh::tunnel_edge_test
