#include "agent/upstream_connection.h"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <cctype>

#include "agent/tls_client_stream.h"
#include "quic/tls_context.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {

constexpr size_t kSocketChunk = 16 * 1024;

// "Connection refused" -> "connection refused": the message goes inside a sentence.
std::string lower_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

UpstreamConnection::UpstreamConnection(Socket socket) : socket_(std::move(socket)) {}

UpstreamConnection::~UpstreamConnection() = default;

std::shared_ptr<UpstreamConnection> UpstreamConnection::from_socket(Socket socket) {
  return std::shared_ptr<UpstreamConnection>(new UpstreamConnection(std::move(socket)));
}

void UpstreamConnection::open(asio::io_context& io, const UpstreamTarget& target, OpenFn done) {
  auto conn = from_socket(Socket(io));
  conn->socket_.async_connect(target.endpoint,
                              [conn, target, done = std::move(done)](boost::system::error_code ec) mutable {
                                if (ec) return done(nullptr, lower_first(ec.message()), false);
                                boost::system::error_code ignored;
                                conn->socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
                                if (!target.tls) return done(conn, {}, false);
                                conn->start_tls(target, std::move(done));
                              });
}

void UpstreamConnection::start_tls(const UpstreamTarget& target, OpenFn done) {
  TlsClientOptions o;
  o.host = target.tls_name;
  o.alpn = target.alpn;
  o.require_alpn = false;  // a server without ALPN speaks HTTP/1.1
  tls_ = std::make_unique<TlsClientStream>(target.tls, std::move(o));
  open_done_ = std::move(done);
  pump();
}

bool UpstreamConnection::is_open() const {
  if (closed_ || !socket_.is_open()) return false;
  return !tls_ || tls_->state() == TlsClientStream::State::kOpen;
}

void UpstreamConnection::cancel() {
  ++gen_;
  write_done_ = nullptr;
  read_done_ = nullptr;
  idle_dropped_ = nullptr;
  write_data_ = {};
  if (!tls_) {
    boost::system::error_code ec;
    socket_.cancel(ec);
  }
  // TLS: a socket read in flight goes on; its bytes are fed to the TLS stream, not lost.
}

void UpstreamConnection::close() {
  cancel();
  open_done_ = nullptr;
  closed_ = true;
  if (tls_) tls_->close();
  boost::system::error_code ec;
  socket_.close(ec);
}

// --- writes and reads --------------------------------------------------------------------------------

void UpstreamConnection::write(std::string_view bytes, WriteFn done) {
  if (!tls_) {
    asio::async_write(socket_, asio::buffer(bytes.data(), bytes.size()),
                      [self = shared_from_this(), gen = gen_, done = std::move(done)](
                          boost::system::error_code ec, size_t) {
                        if (gen != self->gen_) return;
                        done(ec ? lower_first(ec.message()) : std::string());
                      });
    return;
  }
  write_done_ = std::move(done);
  write_data_ = bytes;
  write_off_ = 0;
  pump();
}

void UpstreamConnection::read(size_t max, ReadFn done) {
  if (!tls_) {
    if (plain_cap_ < max) {
      plain_buf_ = std::make_unique_for_overwrite<uint8_t[]>(max);
      plain_cap_ = max;
    }
    socket_.async_read_some(asio::buffer(plain_buf_.get(), max),
                            [self = shared_from_this(), gen = gen_, done = std::move(done)](
                                boost::system::error_code ec, size_t n) {
                              if (gen != self->gen_) return;
                              const bool eof = ec == asio::error::eof;
                              done(std::span<const uint8_t>(self->plain_buf_.get(), n), eof,
                                   ec && !eof ? lower_first(ec.message()) : std::string());
                            });
    return;
  }
  read_done_ = std::move(done);
  read_max_ = max;
  pump();
}

void UpstreamConnection::shutdown_write() {
  if (!tls_) {
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
    return;
  }
  shutdown_wanted_ = true;
  pump();
}

void UpstreamConnection::watch_idle(std::function<void()> dropped) {
  if (!tls_) {
    socket_.async_wait(Socket::wait_read, [self = shared_from_this(), gen = gen_,
                                           dropped = std::move(dropped)](boost::system::error_code ec) {
      if (gen != self->gen_ || ec == asio::error::operation_aborted) return;
      dropped();  // an idle keep-alive connection has nothing to say
    });
    return;
  }
  idle_dropped_ = std::move(dropped);
  pump();
}

// --- TLS -------------------------------------------------------------------------------------------------

void UpstreamConnection::post_read(std::span<const uint8_t> data, bool eof, const std::string& error) {
  read_buf_.assign(data.begin(), data.end());
  asio::post(socket_.get_executor(),
             [self = shared_from_this(), gen = gen_, done = std::move(read_done_), eof, error] {
               if (gen != self->gen_) return;
               done(self->read_buf_, eof, error);
             });
  read_done_ = nullptr;
}

void UpstreamConnection::fail_ops(const std::string& why) {
  if (open_done_) {
    asio::post(socket_.get_executor(), [done = std::move(open_done_), why] { done(nullptr, why, true); });
    open_done_ = nullptr;
  }
  if (write_done_) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), gen = gen_, done = std::move(write_done_), why] {
                 if (gen == self->gen_) done(why);
               });
    write_done_ = nullptr;
  }
  if (read_done_) post_read({}, false, why);
  if (idle_dropped_) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), gen = gen_, done = std::move(idle_dropped_)] {
                 if (gen == self->gen_) done();
               });
    idle_dropped_ = nullptr;
  }
}

void UpstreamConnection::pump() {
  if (!tls_ || closed_) return;
  using State = TlsClientStream::State;
  // Plaintext in.
  if (write_done_ && tls_->state() == State::kOpen) {
    while (write_off_ < write_data_.size()) {
      const auto rest = std::span<const uint8_t>(
          reinterpret_cast<const uint8_t*>(write_data_.data()) + write_off_, write_data_.size() - write_off_);
      const size_t n = tls_->write(rest);
      if (n == 0) break;
      write_off_ += n;
    }
  }
  if (shutdown_wanted_ && !shutdown_sent_ && !write_done_ && tls_->state() == State::kOpen) {
    shutdown_sent_ = true;
    tls_->shutdown();
  }
  // Ciphertext out.
  if (!sock_writing_ && !tls_->wire_output().empty()) {
    const auto out = tls_->wire_output();
    sock_out_.assign(out.begin(), out.end());
    sock_writing_ = true;
    asio::async_write(
        socket_, asio::buffer(sock_out_),
        [self = shared_from_this()](boost::system::error_code ec, size_t n) {
          self->sock_writing_ = false;
          if (self->closed_) return;
          if (ec) {
            self->tls_->wire_failed("write to the upstream failed: " + lower_first(ec.message()));
          } else {
            self->tls_->wire_consume(n);
          }
          self->pump();
        });
  }
  if (!sock_writing_ && tls_->wire_output().empty() && tls_->wire_write_done() && shutdown_sent_) {
    boost::system::error_code ignored;
    socket_.shutdown(Socket::shutdown_send, ignored);
  }

  const State st = tls_->state();
  if (st == State::kFailed) return fail_ops(tls_->error());
  if (open_done_ && st == State::kOpen) {
    alpn_ = tls_->alpn();
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), done = std::move(open_done_)] { done(self, {}, false); });
    open_done_ = nullptr;
  }
  // Write completion: every byte taken and encrypted bytes on their way out.
  if (write_done_ && write_off_ == write_data_.size() && tls_->wire_output().empty() && !sock_writing_) {
    asio::post(socket_.get_executor(),
               [self = shared_from_this(), gen = gen_, done = std::move(write_done_)] {
                 if (gen == self->gen_) done({});
               });
    write_done_ = nullptr;
  }
  // Plaintext out.
  const auto readable = tls_->readable();
  if (idle_dropped_ && (!readable.empty() || tls_->peer_finished() || st == State::kClosed)) {
    fail_ops("the idle connection became unusable");
    return;
  }
  if (read_done_) {
    if (!readable.empty()) {
      const size_t n = std::min(readable.size(), read_max_);
      const auto piece = readable.first(n);
      post_read(piece, false, {});
      tls_->consume(n);
    } else if (tls_->peer_finished()) {
      post_read({}, true, {});
    }
  }
  // Ciphertext in: only while someone waits for what it brings and the TLS stream has room.
  const bool wanted = open_done_ || read_done_ || idle_dropped_;
  if (wanted && !sock_reading_ && !sock_eof_ && tls_->wire_space() > 0) {
    sock_in_.resize(std::min(kSocketChunk, tls_->wire_space()));
    sock_reading_ = true;
    socket_.async_read_some(
        asio::buffer(sock_in_), [self = shared_from_this()](boost::system::error_code ec, size_t n) {
          self->sock_reading_ = false;
          if (self->closed_) return;
          if (n > 0) self->tls_->wire_feed(std::span<const uint8_t>(self->sock_in_.data(), n));
          if (ec == asio::error::eof) {
            self->sock_eof_ = true;
            self->tls_->wire_eof();
          } else if (ec) {
            self->sock_eof_ = true;
            self->tls_->wire_failed("read from the upstream failed: " + lower_first(ec.message()));
          }
          self->pump();
        });
  }
}

}  // namespace wtmesh::agent
