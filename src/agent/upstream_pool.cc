#include "agent/upstream_pool.h"

#include <algorithm>

namespace wtmesh::agent {

namespace asio = boost::asio;

UpstreamPool::UpstreamPool(asio::io_context& io, asio::ip::tcp::endpoint upstream, PoolLimits limits)
    : endpoint_(std::move(upstream)), limits_(limits), sweep_(io) {}

UpstreamPool::~UpstreamPool() { clear(); }

void UpstreamPool::clear() {
  for (auto& i : idle_) {
    boost::system::error_code ec;
    i.socket->close(ec);
  }
  idle_.clear();
  sweep_.cancel();
  sweep_armed_ = false;
}

std::unique_ptr<UpstreamPool::Socket> UpstreamPool::take() {
  while (!idle_.empty()) {
    Idle i = std::move(idle_.back());
    idle_.pop_back();
    boost::system::error_code ec;
    i.socket->cancel(ec);  // ends the readability watch (its handler sees the serial gone)
    if (!ec && i.socket->is_open()) {
      ++reuses_;
      return std::move(i.socket);
    }
  }
  return nullptr;
}

void UpstreamPool::put(std::unique_ptr<Socket> socket) {
  if (!socket || !socket->is_open() || limits_.max_idle == 0) return;
  while (idle_.size() >= limits_.max_idle) {
    boost::system::error_code ec;
    idle_.front().socket->close(ec);
    idle_.pop_front();
  }
  idle_.push_back(Idle{std::move(socket), std::chrono::steady_clock::now(), next_serial_++});
  watch(idle_.back());
  arm_sweep();
}

void UpstreamPool::watch(Idle& idle) {
  // An idle keep-alive connection has nothing to say: readable means EOF, reset or junk.
  idle.socket->async_wait(Socket::wait_read, [this, alive = std::weak_ptr<int>(alive_),
                                              serial = idle.serial](boost::system::error_code ec) {
    if (alive.expired() || ec == asio::error::operation_aborted) return;
    drop(serial);
  });
}

void UpstreamPool::drop(uint64_t serial) {
  auto it = std::find_if(idle_.begin(), idle_.end(), [&](const Idle& i) { return i.serial == serial; });
  if (it == idle_.end()) return;
  boost::system::error_code ec;
  it->socket->close(ec);
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
      boost::system::error_code ignored;
      idle_.front().socket->close(ignored);
      idle_.pop_front();
    }
    arm_sweep();
  });
}

}  // namespace wtmesh::agent
