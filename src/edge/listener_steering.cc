#include "edge/listener_steering.h"

#include <unistd.h>

#include <boost/asio/post.hpp>
#include <chrono>

#include "edge/public_listener.h"
#include "edge/route_table.h"
#include "edge/worker_directory.h"

namespace wtmesh::edge {

SteeredConnection::SteeredConnection(SteeredConnection&& o) noexcept
    : fd(std::exchange(o.fd, -1)),
      protocol(o.protocol),
      bytes(std::move(o.bytes)),
      limit_key(std::move(o.limit_key)),
      address(o.address) {}

SteeredConnection& SteeredConnection::operator=(SteeredConnection&& o) noexcept {
  if (this == &o) return *this;
  if (fd >= 0) ::close(fd);
  fd = std::exchange(o.fd, -1);
  protocol = o.protocol;
  bytes = std::move(o.bytes);
  limit_key = std::move(o.limit_key);
  address = o.address;
  return *this;
}

SteeredConnection::~SteeredConnection() {
  if (fd >= 0) ::close(fd);
}

PortSteering::PortSteering(RouteTable& routes, std::string edge, std::shared_ptr<PublicListenerShared> counts,
                           size_t workers)
    : routes_(routes), edge_(std::move(edge)), counts_(std::move(counts)) {
  slots_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) slots_.push_back(std::make_shared<Slot>());
}

void PortSteering::attach(unsigned worker, PublicListener& listener, boost::asio::io_context& io) {
  Slot& s = *slots_.at(worker);
  std::lock_guard lock(s.m);
  s.listener = &listener;
  s.io = &io;
}

void PortSteering::detach(unsigned worker, const PublicListener& listener) {
  Slot& s = *slots_.at(worker);
  std::lock_guard lock(s.m);
  if (s.listener != &listener) return;
  s.listener = nullptr;
  s.io = nullptr;
}

std::optional<unsigned> PortSteering::owner(std::string_view host, unsigned self) {
  // The completion may run later with another table: it then writes into an answer nobody reads.
  struct Answer {
    bool answered = false;
    std::optional<unsigned> worker;
  };
  auto a = std::make_shared<Answer>();
  routes_.lookup(kHttp, host, std::chrono::steady_clock::now(),
                 [a, edge = std::string_view(edge_)](const RouteMatch& m) {
                   a->answered = true;
                   if (m.live()) a->worker = worker_of(m.edge_id, edge);
                 });
  if (!a->answered || !a->worker || *a->worker == self || *a->worker >= slots_.size()) return std::nullopt;
  return a->worker;
}

void PortSteering::hand_over(unsigned to, SteeredConnection c) {
  std::shared_ptr<Slot> slot = slots_.at(to);
  std::lock_guard lock(slot->m);
  if (slot->io == nullptr) {
    drop(c);
    return;
  }
  boost::asio::post(*slot->io, [self = shared_from_this(), slot, c = std::move(c)]() mutable {
    PublicListener* listener = nullptr;
    {
      std::lock_guard l(slot->m);
      listener = slot->listener;
    }
    // Detached only on this same thread: the listener cannot go between the lock and the call.
    if (listener == nullptr) {
      self->drop(c);
      return;
    }
    listener->adopt(std::move(c));
  });
}

void PortSteering::drop(SteeredConnection& c) {
  if (const int fd = c.take_fd(); fd >= 0) ::close(fd);
  counts_->closed(c.limit_key);
}

}  // namespace wtmesh::edge
