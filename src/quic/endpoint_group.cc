#include "quic/endpoint_group.h"

#include <gnutls/crypto.h>

#include <boost/asio/post.hpp>
#include <cstring>
#include <stdexcept>
#include <string>

#include "quic/dispatcher.h"
#include "quic/endpoint.h"

namespace wtmesh::quic {

void ForwardBatch::add(std::span<const uint8_t> packet, const sockaddr* from, socklen_t fromlen) {
  Item i;
  i.offset = static_cast<uint32_t>(bytes.size());
  i.length = static_cast<uint32_t>(packet.size());
  i.fromlen = std::min<socklen_t>(fromlen, sizeof(i.from));
  std::memcpy(&i.from, from, i.fromlen);
  bytes.insert(bytes.end(), packet.begin(), packet.end());
  items.push_back(i);
}

EndpointGroup::EndpointGroup(size_t workers) {
  if (workers < 2 || workers > Dispatcher::kMaxWorkers)
    throw std::invalid_argument("quic: an endpoint group has 2 to " +
                                std::to_string(Dispatcher::kMaxWorkers) + " workers, not " +
                                std::to_string(workers));
  slots_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) slots_.push_back(std::make_shared<Slot>());
  gnutls_rnd(GNUTLS_RND_RANDOM, reset_secret_.data(), reset_secret_.size());
  gnutls_rnd(GNUTLS_RND_RANDOM, token_secret_.data(), token_secret_.size());
}

EndpointGroup::~EndpointGroup() {
  // Endpoints still attached must not reach back into a destroyed group.
  for (auto& s : slots_) {
    std::lock_guard lock(s->m);
    if (s->endpoint != nullptr) s->endpoint->group_ = nullptr;
    s->endpoint = nullptr;
    s->io = nullptr;
  }
}

void EndpointGroup::attach(size_t index, Endpoint& ep, boost::asio::io_context& io) {
  Slot& s = *slots_.at(index);
  std::lock_guard lock(s.m);
  if (s.endpoint != nullptr)
    throw std::logic_error("quic: worker " + std::to_string(index) + " joined twice");
  s.endpoint = &ep;
  s.io = &io;
}

void EndpointGroup::detach(size_t index, const Endpoint& ep) {
  Slot& s = *slots_.at(index);
  std::lock_guard lock(s.m);
  if (s.endpoint != &ep) return;
  s.endpoint = nullptr;
  s.io = nullptr;
}

size_t EndpointGroup::forward(size_t to, ForwardBatch batch) {
  if (to >= slots_.size() || batch.empty()) return 0;
  std::shared_ptr<Slot> slot = slots_[to];
  // Reserve room in the owner's queue; what does not fit is dropped from the batch's end.
  size_t n = batch.items.size();
  size_t queued = slot->queued.load(std::memory_order_relaxed);
  do {
    if (queued >= kMaxQueued) return 0;
    n = std::min(n, kMaxQueued - queued);
  } while (!slot->queued.compare_exchange_weak(queued, queued + n, std::memory_order_relaxed));
  batch.items.resize(n);
  std::lock_guard lock(slot->m);
  if (slot->io == nullptr) {
    slot->queued.fetch_sub(n, std::memory_order_relaxed);
    return 0;
  }
  boost::asio::post(*slot->io, [slot, b = std::move(batch)]() mutable {
    slot->queued.fetch_sub(b.items.size(), std::memory_order_relaxed);
    // The endpoint is destroyed only on this thread (or once it stopped): no lock needed to use it
    // here, but the pointer is written under the lock.
    Endpoint* ep = nullptr;
    {
      std::lock_guard inner(slot->m);
      ep = slot->endpoint;
    }
    if (ep != nullptr) ep->receive_forwarded(b);
  });
  return n;
}

}  // namespace wtmesh::quic
