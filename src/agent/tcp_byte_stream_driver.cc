#include "agent/tcp_byte_stream_driver.h"

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/write.hpp>
#include <cstring>

namespace wtmesh::agent {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct TcpByteStreamDriver::Io {
  explicit Io(asio::io_context& io) : socket(io), resolver(io), timer(io) {}
  TcpByteStreamDriver* owner = nullptr;  // nullptr once the driver is gone
  tcp::socket socket;
  tcp::resolver resolver;
  asio::steady_timer timer;
  std::vector<uint8_t> rbuf, wbuf;
  bool connecting = false, connected = false, reading = false, writing = false;
  bool eof = false, half_closed = false, closed = false;
};

TcpByteStreamDriver::TcpByteStreamDriver(asio::io_context& io, wt::ByteStream& stream,
                                         wt::ByteStreamWire& wire, TcpDriverOptions options)
    : stream_(stream), wire_(wire), options_(options), io_(std::make_shared<Io>(io)) {
  io_->owner = this;
  wire_.set_wire_listener(this);
}

TcpByteStreamDriver::~TcpByteStreamDriver() {
  wire_.set_wire_listener(nullptr);
  io_->owner = nullptr;
  close_socket();
}

bool TcpByteStreamDriver::connected() const { return io_->connected && !io_->closed; }
bool TcpByteStreamDriver::finished() const { return io_->closed; }

void TcpByteStreamDriver::arm_timer() {
  io_->timer.expires_after(options_.open_timeout);
  io_->timer.async_wait([io = io_](const boost::system::error_code& ec) {
    TcpByteStreamDriver* self = io->owner;
    if (ec || self == nullptr || io->closed || self->stream_.state() != wt::ByteStream::State::kOpening)
      return;
    const std::string ms = std::to_string(self->options_.open_timeout.count()) + " ms";
    self->fail(io->connected ? "opening the stream to " + self->peer_ + " timed out after " + ms
                             : "connect to " + self->peer_ + " timed out after " + ms);
  });
}

void TcpByteStreamDriver::connect(const std::string& host, uint16_t port) {
  std::string h = host;
  if (h.size() > 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  peer_ = (h.find(':') != std::string::npos ? "[" + h + "]" : h) + ":" + std::to_string(port);
  io_->connecting = true;
  arm_timer();
  io_->resolver.async_resolve(
      h, std::to_string(port),
      [io = io_](const boost::system::error_code& ec, tcp::resolver::results_type results) {
        TcpByteStreamDriver* self = io->owner;
        if (self == nullptr || io->closed) return;
        if (ec) {
          self->fail("cannot resolve " + self->peer_ + ": " + ec.message());
          return;
        }
        asio::async_connect(io->socket, results,
                            [io](const boost::system::error_code& ec2, const tcp::endpoint&) {
                              TcpByteStreamDriver* self2 = io->owner;
                              if (self2 == nullptr || io->closed) return;
                              if (ec2) {
                                self2->fail("cannot connect to " + self2->peer_ + ": " + ec2.message());
                                return;
                              }
                              self2->on_connected();
                            });
      });
}

void TcpByteStreamDriver::connect(const tcp::endpoint& endpoint) {
  const std::string addr = endpoint.address().to_string();
  peer_ = (endpoint.address().is_v6() ? "[" + addr + "]" : addr) + ":" + std::to_string(endpoint.port());
  io_->connecting = true;
  arm_timer();
  io_->socket.async_connect(endpoint, [io = io_](const boost::system::error_code& ec) {
    TcpByteStreamDriver* self = io->owner;
    if (self == nullptr || io->closed) return;
    if (ec) {
      self->fail("cannot connect to " + self->peer_ + ": " + ec.message());
      return;
    }
    self->on_connected();
  });
}

void TcpByteStreamDriver::on_connected() {
  io_->connecting = false;
  io_->connected = true;
  boost::system::error_code ignored;
  io_->socket.set_option(tcp::no_delay(true), ignored);
  pump();
}

void TcpByteStreamDriver::fail(const std::string& why) {
  // The stream fails (its handler hears why); it then reports wire_finished and pump() closes.
  wire_.wire_failed(why);
  close_socket();
}

void TcpByteStreamDriver::close_socket() {
  if (io_->closed) return;
  io_->closed = true;
  boost::system::error_code ignored;
  io_->timer.cancel();
  io_->resolver.cancel();
  io_->socket.shutdown(tcp::socket::shutdown_both, ignored);
  io_->socket.close(ignored);
}

void TcpByteStreamDriver::pump() {
  Io& io = *io_;
  if (!io.connected || io.closed) return;
  if (stream_.state() != wt::ByteStream::State::kOpening) io.timer.cancel();
  start_write();
  start_read();
  if (io.closed || io.writing || !wire_.wire_output().empty()) return;
  if (wire_.wire_finished()) {
    close_socket();
  } else if (wire_.wire_write_done() && !io.half_closed) {
    io.half_closed = true;
    boost::system::error_code ignored;
    io.socket.shutdown(tcp::socket::shutdown_send, ignored);
  }
}

void TcpByteStreamDriver::start_read() {
  Io& io = *io_;
  if (io.reading || io.eof || io.closed || wire_.wire_finished()) return;
  const size_t room = std::min(wire_.wire_space(), options_.read_chunk);
  if (room == 0) return;  // demand-driven: on_wire_ready() resumes once the stream made room
  if (io.rbuf.size() < room) io.rbuf.resize(room);
  io.reading = true;
  io.socket.async_read_some(asio::buffer(io.rbuf.data(), room),
                            [io = io_](const boost::system::error_code& ec, size_t n) {
                              io->reading = false;
                              TcpByteStreamDriver* self = io->owner;
                              if (self == nullptr || io->closed) return;
                              if (n > 0)
                                self->wire_.wire_feed({io->rbuf.data(), n});  // fits: room was wire_space()
                              if (io->closed) return;
                              if (ec == asio::error::eof) {
                                io->eof = true;
                                self->wire_.wire_eof();
                              } else if (ec) {
                                self->fail("read from " + self->peer_ + " failed: " + ec.message());
                                return;
                              }
                              self->pump();
                            });
}

void TcpByteStreamDriver::start_write() {
  Io& io = *io_;
  if (io.writing || io.closed) return;
  const auto out = wire_.wire_output();
  if (out.empty()) return;
  // Copied (the stream may append and move its buffer meanwhile) but consumed only once written.
  io.wbuf.assign(out.begin(), out.end());
  io.writing = true;
  asio::async_write(io.socket, asio::buffer(io.wbuf),
                    [io = io_](const boost::system::error_code& ec, size_t n) {
                      io->writing = false;
                      TcpByteStreamDriver* self = io->owner;
                      if (self == nullptr || io->closed) return;
                      if (ec) {
                        self->fail("write to " + self->peer_ + " failed: " + ec.message());
                        return;
                      }
                      self->wire_.wire_consume(n);  // may call on_wire_ready → pump
                      self->pump();
                    });
}

}  // namespace wtmesh::agent
