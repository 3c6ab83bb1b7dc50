// The Asio driver of a sans-I/O byte stream over TCP (wt/byte_stream.h): it resolves and connects a
// socket, then only moves bytes between the socket and the stream's wire face. The protocol (TLS:
// agent/tls_client_stream.h) and everything above it stay socket-free.
//
//  - Reading is driven by demand: the socket is read only while wire_space() > 0, so a stream whose
//    application does not consume stops reading and TCP's window pushes back on the peer.
//  - Writing: wire_output() is copied into the driver's buffer and consumed from the stream only once
//    the socket took it, so bytes in flight still count against the stream's write cap (at most two
//    caps of memory per connection).
//  - open_timeout bounds resolve + connect + the stream's opening (TLS handshake); when it fires the
//    stream fails with "connect to HOST:PORT timed out after N ms" (or "... opening ..."), as it
//    fails for a connect or socket error. The stream's handler hears it (on_closed); the driver has no
//    callbacks of its own.
//  - When the stream's direction ended cleanly (wire_write_done) the socket's send side is shut down
//    once everything was written; when the stream is over (wire_finished) the socket is closed after
//    its last bytes (e.g. a TLS alert) were written.
//  - Ownership: the owner keeps the stream alive while the driver lives and destroys the driver first
//    (never from inside a stream callback). Destroying the driver closes the socket; handlers already
//    queued find it gone and do nothing.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "wt/byte_stream.h"

namespace wtmesh::agent {

struct TcpDriverOptions {
  std::chrono::milliseconds open_timeout{10'000};  // resolve + connect + the stream's opening
  size_t read_chunk = 16 * 1024;                   // one socket read at most
};

class TcpByteStreamDriver final : public wt::ByteStreamWireListener {
 public:
  // `stream` and `wire` are usually the two faces of one object (see the template below).
  TcpByteStreamDriver(boost::asio::io_context& io, wt::ByteStream& stream, wt::ByteStreamWire& wire,
                      TcpDriverOptions options = {});
  template <class S>
  TcpByteStreamDriver(boost::asio::io_context& io, S& stream, TcpDriverOptions options = {})
      : TcpByteStreamDriver(io, static_cast<wt::ByteStream&>(stream),
                            static_cast<wt::ByteStreamWire&>(stream), options) {}
  ~TcpByteStreamDriver() override;
  TcpByteStreamDriver(const TcpByteStreamDriver&) = delete;
  TcpByteStreamDriver& operator=(const TcpByteStreamDriver&) = delete;

  // Resolves `host` (a name or an IP literal, "[v6]" accepted) and connects to the first address that
  // answers. Call once.
  void connect(const std::string& host, uint16_t port);
  void connect(const boost::asio::ip::tcp::endpoint& endpoint);

  bool connected() const;
  // The socket is closed (the stream is over).
  bool finished() const;

  void on_wire_ready() override { pump(); }

 private:
  struct Io;  // socket, timer, buffers: shared with pending handlers, which check Io::owner
  void arm_timer();
  void on_connected();
  void pump();
  void start_read();
  void start_write();
  void fail(const std::string& why);
  void close_socket();

  wt::ByteStream& stream_;
  wt::ByteStreamWire& wire_;
  TcpDriverOptions options_;
  std::shared_ptr<Io> io_;
  std::string peer_;  // "host:port", for errors
};

}  // namespace wtmesh::agent
