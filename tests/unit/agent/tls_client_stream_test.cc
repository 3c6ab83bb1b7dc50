// The agent's TLS client stream against the edge's real TlsServerStream, both sans-I/O: bytes are
// pumped between them in memory.
#include "agent/tls_client_stream.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "../../support/temp_dir.h"
#include "edge/tls_server_stream.h"
#include "quic/certs.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {
namespace {

using State = wt::ByteStream::State;

// Records what the stream told its handler.
struct Recorder : wt::ByteStreamHandler {
  int opened = 0, readable = 0, writable = 0, closed = 0;
  std::string close_error = "<none>";
  void on_open() override { ++opened; }
  void on_readable() override { ++readable; }
  void on_writable() override { ++writable; }
  void on_closed(std::string_view error) override {
    ++closed;
    close_error = std::string(error);
  }
};

std::span<const uint8_t> bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

class TlsClientStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    certs_ = quic::ensure_state_certs(dir_.path());
    server_config_ = edge::TlsServerConfig::from_files(certs_.cert, certs_.key);
  }
  std::shared_ptr<const quic::TlsClientContext> ca_context() {
    return std::make_shared<const quic::TlsClientContext>(
        quic::TlsClientContext::with_ca_file(certs_.ca_cert));
  }
  std::unique_ptr<TlsClientStream> client(std::shared_ptr<const quic::TlsClientContext> ctx,
                                          const std::string& host = "localhost",
                                          std::vector<std::string> alpn = {"h2", "http/1.1"},
                                          TlsClientLimits limits = {}) {
    TlsClientOptions o;
    o.host = host;
    o.alpn = std::move(alpn);
    o.limits = limits;
    auto c = std::make_unique<TlsClientStream>(std::move(ctx), std::move(o));
    c->set_handler(&rec_);
    return c;
  }
  // Moves ciphertext both ways until nothing moves.
  static void pump(TlsClientStream& c, edge::TlsServerStream& s) {
    for (int i = 0; i < 10000; ++i) {
      bool moved = false;
      if (auto out = c.wire_output(); !out.empty()) {
        const size_t n = s.feed(out);
        c.wire_consume(n);
        moved |= n > 0;
      }
      if (auto ct = s.ciphertext(); !ct.empty()) {
        const size_t n = c.wire_feed(ct);
        s.consume_ciphertext(n);
        moved |= n > 0;
      }
      if (!moved) return;
    }
  }
  static std::string take(edge::TlsServerStream& s) {
    auto p = s.plaintext();
    std::string out(p.begin(), p.end());
    s.consume_plaintext(p.size());
    return out;
  }

  test::TempDir dir_{"wtmesh-tls-client"};
  quic::CertFiles certs_;
  std::shared_ptr<const edge::TlsServerConfig> server_config_;
  Recorder rec_;
};

TEST_F(TlsClientStreamTest, HandshakeWithAlpnAndDataBothWays) {
  auto c = client(ca_context());
  edge::TlsServerStream s(server_config_);
  EXPECT_FALSE(c->wire_output().empty());  // the ClientHello
  EXPECT_EQ(c->write(bytes("early")), 0u);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kOpen) << c->error();
  EXPECT_EQ(rec_.opened, 1);
  EXPECT_EQ(c->alpn(), "http/1.1");  // the edge's public listener speaks only HTTP/1.1
  EXPECT_EQ(s.server_name(), "localhost");
  EXPECT_EQ(c->version(), "TLS1.3");
  EXPECT_EQ(c->cipher(), "AES-128-GCM");

  EXPECT_EQ(c->write(bytes("hello edge")), 10u);
  pump(*c, s);
  EXPECT_EQ(take(s), "hello edge");
  EXPECT_EQ(s.write(bytes("hello agent")), 11u);
  pump(*c, s);
  EXPECT_GE(rec_.readable, 1);
  EXPECT_EQ(std::string(c->readable().begin(), c->readable().end()), "hello agent");
  c->consume(5);
  EXPECT_EQ(std::string(c->readable().begin(), c->readable().end()), " agent");
}

TEST_F(TlsClientStreamTest, RequiredAlpnMissingFailsWithAClearError) {
  auto c = client(ca_context(), "localhost", {"h2"});
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kFailed);
  EXPECT_NE(c->error().find("server localhost selected"), std::string::npos) << c->error();
  EXPECT_NE(c->error().find("wanted h2"), std::string::npos) << c->error();
  EXPECT_EQ(rec_.opened, 0);
  EXPECT_EQ(rec_.closed, 1);
  EXPECT_TRUE(c->wire_finished());
}

TEST_F(TlsClientStreamTest, WrongHostNameIsNotTrusted) {
  auto c = client(ca_context(), "edge.example.com");
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kFailed);
  EXPECT_EQ(c->error().rfind("certificate not trusted for edge.example.com: ", 0), 0u) << c->error();
  EXPECT_EQ(rec_.close_error, c->error());
  // The server heard why (a certificate alert), not a silent close.
  EXPECT_EQ(s.state(), edge::TlsServerStream::State::kFailed);
}

TEST_F(TlsClientStreamTest, UntrustedCaIsRefused) {
  test::TempDir other("wtmesh-tls-other");
  auto other_certs = quic::ensure_state_certs(other.path());
  auto ctx = std::make_shared<const quic::TlsClientContext>(
      quic::TlsClientContext::with_ca_file(other_certs.ca_cert));
  auto c = client(ctx);
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kFailed);
  EXPECT_EQ(c->error().rfind("certificate not trusted for localhost: ", 0), 0u) << c->error();
}

TEST_F(TlsClientStreamTest, PinMismatchIsRefusedAndPinOnlyAccepts) {
  {
    auto ctx = quic::TlsClientContext::with_ca_file(certs_.ca_cert);
    ctx.pin_sha256(std::string(64, '0'));
    auto c = client(std::make_shared<const quic::TlsClientContext>(std::move(ctx)));
    edge::TlsServerStream s(server_config_);
    pump(*c, s);
    ASSERT_EQ(c->state(), State::kFailed);
    EXPECT_NE(c->error().find("does not match the pinned hash"), std::string::npos) << c->error();
  }
  {
    // Pin only: no CA and no host name check (an IP literal, as the doctor dials by address).
    auto ctx = std::make_shared<const quic::TlsClientContext>(
        quic::TlsClientContext::with_pin_only(certs_.sha256_hex));
    auto c = client(ctx, "192.0.2.1");
    edge::TlsServerStream s(server_config_);
    pump(*c, s);
    EXPECT_EQ(c->state(), State::kOpen) << c->error();
    EXPECT_EQ(s.server_name(), "");  // no IP literal in SNI
  }
}

TEST_F(TlsClientStreamTest, InvalidHostFailsAtConstruction) {
  auto c = client(ca_context(), "");
  EXPECT_EQ(c->state(), State::kFailed);
  EXPECT_NE(c->error().find("invalid server name"), std::string::npos) << c->error();
  EXPECT_TRUE(c->wire_output().empty());
}

TEST_F(TlsClientStreamTest, BackpressureBothWaysWithBoundedBuffers) {
  TlsClientLimits small{16 * 1024, 16 * 1024, 16 * 1024};
  auto c = client(ca_context(), "localhost", {"http/1.1"}, small);
  edge::TlsServerStream s(server_config_, edge::TlsStreamLimits{16 * 1024, 16 * 1024, 16 * 1024});
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kOpen) << c->error();

  // Agent → edge: 1 MiB through 16 KiB buffers; write() takes less than offered until drained.
  std::string up(1 << 20, '\0');
  for (size_t i = 0; i < up.size(); ++i) up[i] = static_cast<char>(i * 7);
  size_t sent = 0;
  std::string got;
  int short_writes = 0;
  for (int rounds = 0; got.size() < up.size() && rounds < 10000; ++rounds) {
    const size_t n = c->write(bytes(up).subspan(sent));
    sent += n;
    if (sent < up.size()) {
      ++short_writes;
      EXPECT_EQ(c->write_capacity(), 0u);
      EXPECT_LE(c->wire_output().size(),
                small.max_ciphertext_out + TlsClientStream::kMaxRecordPlaintext + 64);
    }
    pump(*c, s);
    got += take(s);
    pump(*c, s);
  }
  EXPECT_EQ(got, up);
  EXPECT_GT(short_writes, 10);
  EXPECT_GE(rec_.writable, 10);

  // Edge → agent: the client holds at most max_plaintext_in until the application consumes.
  std::string down(1 << 20, 'x');
  size_t down_sent = 0, received = 0;
  for (int rounds = 0; received < down.size() && rounds < 10000; ++rounds) {
    down_sent += s.write(bytes(down).subspan(down_sent));
    pump(*c, s);
    EXPECT_LE(c->readable().size(), small.max_plaintext_in);
    if (rounds % 2 == 0) {  // a slow reader: consume half of what is there
      const size_t n = std::max<size_t>(c->readable().size() / 2, 1);
      received += std::min(n, c->readable().size());
      c->consume(n);
    } else {
      received += c->readable().size();
      c->consume(c->readable().size());
    }
  }
  EXPECT_EQ(received, down.size());
}

TEST_F(TlsClientStreamTest, CloseNotifyBothWays) {
  auto c = client(ca_context());
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kOpen) << c->error();
  // The edge ends first: its close_notify after its last bytes.
  EXPECT_EQ(s.write(bytes("bye")), 3u);
  s.close();
  pump(*c, s);
  EXPECT_EQ(std::string(c->readable().begin(), c->readable().end()), "bye");
  EXPECT_FALSE(c->peer_finished());
  c->consume(3);
  EXPECT_TRUE(c->peer_finished());
  EXPECT_TRUE(c->peer_sent_close_notify());
  EXPECT_EQ(c->state(), State::kOpen);  // our direction is still open
  EXPECT_EQ(rec_.closed, 0);
  // Then the agent: its last bytes, close_notify, and the stream is over once they are written.
  EXPECT_EQ(c->write(bytes("last words")), 10u);
  c->shutdown();
  EXPECT_EQ(c->write(bytes("more")), 0u);
  EXPECT_FALSE(c->wire_write_done());
  pump(*c, s);
  EXPECT_TRUE(c->wire_write_done());
  EXPECT_EQ(take(s), "last words");
  EXPECT_TRUE(s.peer_finished());
  EXPECT_EQ(c->state(), State::kClosed);
  EXPECT_EQ(rec_.closed, 1);
  EXPECT_EQ(rec_.close_error, "");
  EXPECT_TRUE(c->wire_finished());
}

TEST_F(TlsClientStreamTest, EofWithoutCloseNotifyAndEofDuringHandshake) {
  {
    auto c = client(ca_context());
    c->wire_eof();
    EXPECT_EQ(c->state(), State::kFailed);
    EXPECT_EQ(c->error(), "connection closed during the TLS handshake with localhost");
  }
  auto c = client(ca_context());
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  ASSERT_EQ(c->state(), State::kOpen);
  c->wire_eof();
  EXPECT_TRUE(c->peer_finished());
  EXPECT_FALSE(c->peer_sent_close_notify());
  EXPECT_EQ(c->state(), State::kOpen);  // our direction may still finish
  c->wire_failed("connection reset by peer");
  EXPECT_EQ(c->state(), State::kFailed);
  EXPECT_EQ(rec_.close_error, "connection reset by peer");
}

TEST_F(TlsClientStreamTest, CloseAbandonsAtOnce) {
  auto c = client(ca_context());
  edge::TlsServerStream s(server_config_);
  pump(*c, s);
  c->write(bytes("unsent"));
  c->close();
  EXPECT_EQ(c->state(), State::kClosed);
  EXPECT_TRUE(c->wire_output().empty());
  EXPECT_TRUE(c->wire_finished());
  EXPECT_EQ(rec_.closed, 1);
  EXPECT_EQ(c->write(bytes("x")), 0u);
}

}  // namespace
}  // namespace wtmesh::agent
