// Idle HTTP/1.1 keep-alive connections to one local upstream (127.0.0.1:PORT, plain TCP or TLS: see
// UpstreamTarget), so consecutive tunnel requests reuse connections. Bounded: at most max_idle
// connections, each closed after idle_timeout. While a connection is idle the pool watches it
// (UpstreamConnection::watch_idle): a keep-alive connection the upstream closed (or that sent
// unsolicited bytes) is dropped at once instead of being handed out.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <memory>

#include "agent/upstream_connection.h"

namespace wtmesh::agent {

struct PoolLimits {
  // Above the concurrency a busy client drives (wrk -c64, browsers' 6 per host x tabs): with 32,
  // 64 concurrent requests closed and reopened an upstream connection for ~20 % of requests.
  size_t max_idle = 128;
  std::chrono::milliseconds idle_timeout{30000};
};

class UpstreamPool {
 public:
  using Connection = std::shared_ptr<UpstreamConnection>;

  UpstreamPool(boost::asio::io_context& io, boost::asio::ip::tcp::endpoint upstream, PoolLimits limits = {});
  UpstreamPool(boost::asio::io_context& io, UpstreamTarget target, PoolLimits limits = {});
  ~UpstreamPool();
  UpstreamPool(const UpstreamPool&) = delete;
  UpstreamPool& operator=(const UpstreamPool&) = delete;

  boost::asio::io_context& io() const { return io_; }
  const boost::asio::ip::tcp::endpoint& endpoint() const { return target_.endpoint; }
  const UpstreamTarget& target() const { return target_; }
  // The most recently returned idle connection, or nullptr when none is idle.
  Connection take();
  // Returns a connection that finished a request/response cleanly. Over max_idle, the oldest goes.
  void put(Connection conn);
  size_t idle_count() const { return idle_.size(); }
  // Connections handed back and later reused (for tests and stats).
  uint64_t reuses() const { return reuses_; }
  void clear();

 private:
  struct Idle {
    Connection conn;
    std::chrono::steady_clock::time_point since;
    uint64_t serial;
  };
  void watch(Idle& idle);
  void drop(uint64_t serial);
  void arm_sweep();

  boost::asio::io_context& io_;
  UpstreamTarget target_;
  PoolLimits limits_;
  std::deque<Idle> idle_;  // oldest first
  boost::asio::steady_timer sweep_;
  bool sweep_armed_ = false;
  uint64_t next_serial_ = 1;
  uint64_t reuses_ = 0;
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);
};

}  // namespace wtmesh::agent
