// The TCP driver with the TLS client stream over loopback: against a small Asio echo server that runs
// the edge's TlsServerStream, and against gnutls-serv (a TLS stack we did not write) when installed.
// Every test runs its io_context with a deadline, so a hang fails instead of blocking.
#include "agent/tcp_byte_stream_driver.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "../../support/temp_dir.h"
#include "agent/tls_client_stream.h"
#include "edge/tls_server_stream.h"
#include "quic/certs.h"
#include "quic/tls_context.h"

extern char** environ;

namespace wtmesh::agent {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

// One accepted connection through the edge's TLS server stream; echoes plaintext, closes after the
// client's close_notify. `silent` accepts and never answers (for the handshake timeout).
class EchoTlsServer {
 public:
  EchoTlsServer(asio::io_context& io, std::shared_ptr<const edge::TlsServerConfig> cfg, bool silent = false)
      : acceptor_(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)),
        socket_(io),
        silent_(silent),
        tls_(std::move(cfg), edge::TlsStreamLimits{16 * 1024, 16 * 1024, 16 * 1024}) {
    acceptor_.async_accept(socket_, [this](const boost::system::error_code& ec) {
      if (!ec && !silent_) read();
    });
  }
  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  size_t echoed = 0;

 private:
  void read() {
    const size_t room = std::min(tls_.space_in(), rbuf_.size());
    if (reading_ || room == 0 || done_) return;
    reading_ = true;
    socket_.async_read_some(asio::buffer(rbuf_.data(), room),
                            [this](const boost::system::error_code& ec, size_t n) {
                              reading_ = false;
                              if (n > 0) tls_.feed({rbuf_.data(), n});
                              if (ec) tls_.feed_eof();
                              pump();
                            });
  }
  void pump() {
    auto p = tls_.plaintext();
    const size_t taken = tls_.write(p);
    echoed += taken;
    tls_.consume_plaintext(taken);
    if (tls_.peer_finished() && !closing_) {
      closing_ = true;
      tls_.close();
    }
    if (!writing_ && !tls_.ciphertext().empty()) {
      writing_ = true;
      tls_.take_ciphertext(wbuf_);
      asio::async_write(socket_, asio::buffer(wbuf_), [this](const boost::system::error_code& ec, size_t) {
        writing_ = false;
        if (ec) done_ = true;
        pump();
      });
    }
    if (closing_ && !writing_ && tls_.ciphertext().empty() && !done_) {
      done_ = true;
      boost::system::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_send, ignored);
    }
    read();
  }

  tcp::acceptor acceptor_;
  tcp::socket socket_;
  bool silent_;
  edge::TlsServerStream tls_;
  std::vector<uint8_t> rbuf_ = std::vector<uint8_t>(16 * 1024), wbuf_;
  bool reading_ = false, writing_ = false, closing_ = false, done_ = false;
};

// Sends `payload`, reads the echo, consuming at most `read_step` bytes per on_readable, then shuts
// down; stops the loop on on_closed.
class EchoClient : public wt::ByteStreamHandler {
 public:
  EchoClient(asio::io_context& io, TlsClientStream& s, std::string payload, size_t read_step = SIZE_MAX)
      : io_(io), s_(s), payload_(std::move(payload)), read_step_(read_step) {}
  void on_open() override {
    alpn = s_.alpn();
    version = s_.version();
    send();
  }
  void on_writable() override { send(); }
  // A slow reader: takes at most read_step bytes, then lets the loop run before taking more (a stream
  // announces only new bytes, so what is left is the reader's to come back for).
  void on_readable() override { drain(); }
  void on_closed(std::string_view e) override {
    closed = true;
    error = std::string(e);
    io_.stop();
  }
  std::string got, alpn, version, error;
  size_t max_readable = 0;
  bool closed = false;

 private:
  void drain() {
    if (closed) return;
    max_readable = std::max(max_readable, s_.readable().size());
    const auto r = s_.readable();
    const size_t n = std::min(r.size(), read_step_);
    got.append(r.begin(), r.begin() + static_cast<ptrdiff_t>(n));
    s_.consume(n);
    if (!s_.readable().empty() && !draining_) {
      draining_ = true;
      asio::post(io_, [this] {
        draining_ = false;
        drain();
      });
    }
    if (got.size() >= payload_.size() && sent_ == payload_.size() && !shut_) {
      shut_ = true;
      s_.shutdown();
    }
  }
  void send() {
    sent_ += s_.write({reinterpret_cast<const uint8_t*>(payload_.data()) + sent_, payload_.size() - sent_});
  }
  asio::io_context& io_;
  TlsClientStream& s_;
  std::string payload_;
  size_t read_step_;
  size_t sent_ = 0;
  bool shut_ = false;
  bool draining_ = false;
};

class TcpByteStreamDriverTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = quic::ensure_state_certs(dir_.path());
    ctx_ =
        std::make_shared<const quic::TlsClientContext>(quic::TlsClientContext::with_ca_file(certs_.ca_cert));
  }
  std::unique_ptr<TlsClientStream> stream(const std::string& host, std::vector<std::string> alpn,
                                          TlsClientLimits limits = {}) {
    TlsClientOptions o;
    o.host = host;
    o.alpn = std::move(alpn);
    o.limits = limits;
    return std::make_unique<TlsClientStream>(ctx_, std::move(o));
  }
  void run(std::chrono::milliseconds limit = 10s) {
    io_.run_for(limit);
    io_.restart();
  }

  test::TempDir dir_{"wtmesh-tcp-driver"};
  quic::CertFiles certs_;
  std::shared_ptr<const quic::TlsClientContext> ctx_;
  asio::io_context io_;
};

TEST_F(TcpByteStreamDriverTest, EchoesTwoMebibytesWithBackpressureAndClosesCleanly) {
  EchoTlsServer server(io_, edge::TlsServerConfig::from_files(certs_.cert, certs_.key));
  auto s = stream("localhost", {"http/1.1"}, TlsClientLimits{16 * 1024, 16 * 1024, 16 * 1024});
  std::string payload(2 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i % 251);
  EchoClient app(io_, *s, payload, 3000);  // a slow reader
  s->set_handler(&app);
  TcpByteStreamDriver driver(io_, *s);
  driver.connect("localhost", server.port());  // resolved; ::1 may be tried first and refused
  run();
  ASSERT_TRUE(app.closed);
  EXPECT_EQ(app.error, "");
  EXPECT_EQ(app.alpn, "http/1.1");
  EXPECT_EQ(app.version, "TLS1.3");
  EXPECT_EQ(app.got.size(), payload.size());
  EXPECT_TRUE(app.got == payload);
  EXPECT_LE(app.max_readable, 16u * 1024);
  EXPECT_TRUE(s->peer_sent_close_notify());
  EXPECT_EQ(s->state(), wt::ByteStream::State::kClosed);
  EXPECT_TRUE(driver.finished());
}

TEST_F(TcpByteStreamDriverTest, ConnectRefusedIsAClearError) {
  uint16_t port;
  {
    tcp::acceptor a(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  auto s = stream("localhost", {"h2"});
  EchoClient app(io_, *s, "x");
  s->set_handler(&app);
  TcpByteStreamDriver driver(io_, *s);
  driver.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  run();
  ASSERT_TRUE(app.closed);
  EXPECT_EQ(app.error.rfind("cannot connect to 127.0.0.1:" + std::to_string(port) + ": ", 0), 0u)
      << app.error;
  EXPECT_TRUE(driver.finished());
}

TEST_F(TcpByteStreamDriverTest, SilentServerTimesOutTheHandshake) {
  EchoTlsServer server(io_, edge::TlsServerConfig::from_files(certs_.cert, certs_.key), /*silent=*/true);
  auto s = stream("localhost", {"h2"});
  EchoClient app(io_, *s, "x");
  s->set_handler(&app);
  TcpByteStreamDriver driver(io_, *s, TcpDriverOptions{200ms});
  driver.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), server.port()));
  const auto t0 = std::chrono::steady_clock::now();
  run();
  ASSERT_TRUE(app.closed);
  EXPECT_EQ(app.error,
            "opening the stream to 127.0.0.1:" + std::to_string(server.port()) + " timed out after 200 ms");
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
}

TEST_F(TcpByteStreamDriverTest, DestroyingTheDriverMidConnectIsSafe) {
  EchoTlsServer server(io_, edge::TlsServerConfig::from_files(certs_.cert, certs_.key));
  auto s = stream("localhost", {"http/1.1"});
  {
    TcpByteStreamDriver driver(io_, *s);
    driver.connect("localhost", server.port());
  }
  run(300ms);  // queued handlers find the driver gone
  EXPECT_EQ(s->state(), wt::ByteStream::State::kOpening);
}

// --- a real peer: gnutls-serv ---------------------------------------------------------------------

std::string find_program(const char* name) {
  for (const char* dir : {"/usr/bin", "/usr/local/bin", "/bin"}) {
    const auto p = std::filesystem::path(dir) / name;
    if (std::filesystem::exists(p)) return p.string();
  }
  return {};
}

// Runs a program until destroyed (SIGTERM, then reaped).
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) pid_ = -1;
    posix_spawn_file_actions_destroy(&fa);
  }
  ~Child() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }
  bool running() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
};

uint16_t free_port(asio::io_context& io) {
  tcp::acceptor a(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

bool wait_listening(asio::io_context& io, uint16_t port) {
  for (int i = 0; i < 100; ++i) {
    tcp::socket probe(io);
    boost::system::error_code ec;
    probe.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port), ec);
    if (!ec) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

TEST_F(TcpByteStreamDriverTest, GnutlsServTls12WithH2) {
  const std::string serv = find_program("gnutls-serv");
  if (serv.empty()) GTEST_SKIP() << "gnutls-serv is not installed";
  const uint16_t port = free_port(io_);
  Child child({serv, "--echo", "--crlf", "-q", "-a", "-p", std::to_string(port), "--x509certfile",
               certs_.cert.string(), "--x509keyfile", certs_.key.string(), "--alpn", "h2", "--priority",
               "NORMAL:-VERS-ALL:+VERS-TLS1.2"});
  ASSERT_TRUE(child.running());
  ASSERT_TRUE(wait_listening(io_, port)) << "gnutls-serv did not listen on " << port;

  auto s = stream("localhost", {"h2", "http/1.1"});
  struct App : wt::ByteStreamHandler {
    TlsClientStream* s = nullptr;
    asio::io_context* io = nullptr;
    std::string got, error = "<open>";
    void on_open() override { s->write({reinterpret_cast<const uint8_t*>("ping over h2\r\n"), 14}); }
    void on_readable() override {
      got.append(s->readable().begin(), s->readable().end());
      s->consume(s->readable().size());
      if (got.find('\n') != std::string::npos) s->close();
    }
    void on_closed(std::string_view e) override {
      error = std::string(e);
      io->stop();
    }
  } app;
  app.s = s.get();
  app.io = &io_;
  s->set_handler(&app);
  TcpByteStreamDriver driver(io_, *s);
  driver.connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), port));
  run();
  EXPECT_EQ(app.error, "");
  EXPECT_EQ(app.got, "ping over h2\r\n");
  EXPECT_EQ(s->alpn(), "h2");
  EXPECT_EQ(s->version(), "TLS1.2");
  EXPECT_EQ(s->cipher(), "AES-128-GCM");
}

}  // namespace
}  // namespace wtmesh::agent
