#include "agent/upstream_pool.h"

#include <algorithm>

namespace wtmesh::agent {

namespace asio = boost::asio;

UpstreamPool::UpstreamPool(asio::io_context& io, asio::ip::tcp::endpoint upstream, PoolLimits limits)
    : UpstreamPool(io, UpstreamTarget{.endpoint = std::move(upstream)}, limits) {}

UpstreamPool::UpstreamPool(asio::io_context& io, UpstreamTarget target, PoolLimits limits)
    : io_(io), target_(std::move(target)), limits_(limits), sweep_(io) {}

UpstreamPool::~UpstreamPool() { clear(); }

void UpstreamPool::clear() {
  for (auto& i : idle_) i.conn->close();
  idle_.clear();
  sweep_.cancel();
  sweep_armed_ = false;
}

UpstreamPool::Connection UpstreamPool::take() {
  while (!idle_.empty()) {
    Idle i = std::move(idle_.back());
    idle_.pop_back();
    i.conn->cancel();  // ends the idle watch
    if (i.conn->is_open()) {
      ++reuses_;
      return std::move(i.conn);
    }
    i.conn->close();
  }
  return nullptr;
}

void UpstreamPool::put(Connection conn) {
  if (!conn || !conn->is_open() || limits_.max_idle == 0) {
    if (conn) conn->close();
    return;
  }
  while (idle_.size() >= limits_.max_idle) {
    idle_.front().conn->close();
    idle_.pop_front();
  }
  idle_.push_back(Idle{std::move(conn), std::chrono::steady_clock::now(), next_serial_++});
  watch(idle_.back());
  arm_sweep();
}

void UpstreamPool::watch(Idle& idle) {
  idle.conn->watch_idle([this, alive = std::weak_ptr<int>(alive_), serial = idle.serial] {
    if (alive.expired()) return;
    drop(serial);
  });
}

void UpstreamPool::drop(uint64_t serial) {
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](const Idle& i) { return i.serial == serial; });
  if (it == idle_.end()) return;
  it->conn->close();
  idle_.erase(it);
}

void UpstreamPool::arm_sweep() {
  if (sweep_armed_ || idle_.empty()) return;
  sweep_armed_ = true;
  sweep_.expires_at(idle_.front().since + limits_.idle_timeout);
  sweep_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (alive.expired()) return;
    sweep_armed_ = false;
    if (ec) return;
    const auto now = std::chrono::steady_clock::now();
    while (!idle_.empty() && now - idle_.front().since >= limits_.idle_timeout) {
      idle_.front().conn->close();
      idle_.pop_front();
    }
    arm_sweep();
  });
}

}  // namespace wtmesh::agent
