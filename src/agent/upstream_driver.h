// The Asio tier of the agent's upstream exchange: AsioUpstreamDriver owns one request's connection to
// the local service (an UpstreamConnection: plain TCP or TLS, taken from the UpstreamPool or opened),
// runs its reads and writes, and feeds their completions to the socket-free UpstreamExchange it
// owns (upstream_exchange.h), whose codec (HTTP/1.1 here) gives the bytes their meaning. Its stream-side
// calls forward to the core. Every handler holds the driver alive and carries a generation
// number: close() and release() bump it, so a late completion for a dropped connection is ignored.
// Memory per exchange is the connection's read buffer plus what the core holds.
//
// Another upstream transport (TLS to the local service; an h2c/h3 connection shared by many
// exchanges; UDP) is another UpstreamTransport beside this one, with the same core.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "agent/upstream_exchange.h"
#include "agent/upstream_pool.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::agent {

// "127.0.0.1:3000", "[::1]:3000": an upstream's address in messages.
std::string endpoint_text(const boost::asio::ip::address& address, uint16_t port);

// The stream side of one relayed request, whichever transport carries it upstream (EdgeSession holds
// these): each call forwards to the driver's UpstreamExchange core.
class UpstreamDriver {
 public:
  virtual ~UpstreamDriver() = default;
  virtual void start(std::span<const uint8_t> early_body, bool fin) = 0;
  virtual void on_body(std::span<const uint8_t> data, bool fin) = 0;
  virtual void on_writable() = 0;
  virtual void on_reset(std::optional<uint32_t> code) = 0;
  virtual void on_stop_sending(std::optional<uint32_t> code) = 0;
  virtual void on_stream_closed() = 0;
  virtual void on_session_gone() = 0;
  virtual bool finished() const = 0;
  virtual wt::StreamId stream_id() const = 0;
};

// The stream side forwarded to an UpstreamExchange core, with the request's duration measured for
// the log: the base of the concrete drivers (which are the core's UpstreamTransport).
class ExchangeDriver : public UpstreamDriver {
 public:
  using DoneFn = UpstreamExchange::DoneFn;

  void start(std::span<const uint8_t> early_body, bool fin) override { core_.start(early_body, fin); }
  void on_body(std::span<const uint8_t> data, bool fin) override { core_.on_body(data, fin); }
  void on_writable() override { core_.on_writable(); }
  void on_reset(std::optional<uint32_t> code) override { core_.on_reset(code); }
  void on_stop_sending(std::optional<uint32_t> code) override { core_.on_stop_sending(code); }
  void on_stream_closed() override { core_.on_stream_closed(); }
  void on_session_gone() override { core_.on_session_gone(); }
  bool finished() const override { return core_.finished(); }
  wt::StreamId stream_id() const override { return core_.stream_id(); }

 protected:
  ExchangeDriver(UpstreamTransport& transport, wt::Session& session, wt::StreamId id,
                 std::unique_ptr<UpstreamCodec> codec, tunnel::RequestHead head, DoneFn done,
                 ExchangeLimits limits);

  std::chrono::steady_clock::time_point started_;
  UpstreamExchange core_;
};

// UpstreamTransport comes first among the bases: the core keeps a reference to it from construction.
class AsioUpstreamDriver final : private UpstreamTransport,
                                 public ExchangeDriver,
                                 public std::enable_shared_from_this<AsioUpstreamDriver> {
 public:
  // An HTTP/1.1 exchange (Http1Codec) toward `pool`'s upstream.
  AsioUpstreamDriver(boost::asio::io_context& io, wt::Session& session, wt::StreamId id, UpstreamPool& pool,
                     tunnel::RequestHead head, DoneFn done, ExchangeLimits limits = {});
  ~AsioUpstreamDriver() override;

 private:
  // UpstreamTransport
  void connect() override;
  void write(std::string_view bytes) override;
  void read(size_t max) override;
  void close() override;
  void release() override;
  void shutdown_write() override;
  std::string name() const override;

  boost::asio::io_context& io_;
  UpstreamPool& pool_;
  size_t read_chunk_;
  UpstreamPool::Connection conn_;
  uint64_t gen_ = 0;  // bumped when the connection is dropped or released: stale handlers ignore
};

}  // namespace wtmesh::agent
