// The private parts of edge::WorkerDirectory (edge/worker_directory.h): the state of a hop's two
// halves, of route lookups between workers, and of relayed WebTransport sessions on another worker's
// session. Included by worker_directory.cc (routes, streams) and worker_directory_relay.cc (relays) only.
#pragma once

#include <atomic>
#include <boost/asio/post.hpp>
#include <string>
#include <utility>
#include <vector>

#include "common/time.h"
#include "edge/worker_directory.h"

namespace wtmesh::edge {

template <typename F>
void WorkerDirectory::post_to(unsigned worker, F&& f) {
  if (outbox_.size() < workers_.size()) outbox_.resize(workers_.size());
  outbox_[worker].emplace_back(std::forward<F>(f));
  if (flush_posted_) return;
  flush_posted_ = true;
  boost::asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    flush_posted_ = false;
    flush_outbox();
  });
}

template <typename F>
bool WorkerDirectory::post_datagram(unsigned worker, F&& f) {
  std::atomic<size_t>& queued = workers_[worker]->datagrams_in_;
  if (queued.load(std::memory_order_relaxed) >= kMaxDatagramsInFlight) {
    ++datagrams_dropped_;
    return false;
  }
  queued.fetch_add(1, std::memory_order_relaxed);
  post_to(worker, std::forward<F>(f));
  return true;
}

// A route() under way on this worker: the caller's events, and what is needed to ask on.
struct WorkerDirectory::Lookup final : RouteEvents {
  Lookup(WorkerDirectory& d, uint64_t t, RouteEvents* e, std::string_view ty, std::string_view h)
      : dir(d), ticket(t), events(e), type(ty), host(h) {}
  void on_route(const RouteLookup& r) override { dir.answer(ticket, r); }  // may destroy *this
  WorkerDirectory& dir;
  uint64_t ticket;
  RouteEvents* events;
  std::string type, host;
  uint64_t local_ticket = 0;  // the local TunnelService's, while it has not answered
};

struct WorkerDirectory::NearHop {
  RequestStreamEvents* events = nullptr;  // null once terminal, cancelled or released
  unsigned worker = 0;
  StreamRef real;                        // the far stream, once opened
  size_t in_flight = 0;                  // request bytes posted that the real stream has not taken
  bool held = false;                     // a write() took less than offered: on_request_writable() is owed
  bool fin_written = false;              // the request's FIN was posted
  bool closed = false;                   // cancel() or release()
  bool aborted = false;                  // on_stream_aborted() was delivered
  uint64_t delivered = 0, consumed = 0;  // response bytes given to / returned by the exchange
};

// A lookup another worker asked of this one.
class WorkerDirectory::FarLookup final : public RouteEvents {
 public:
  FarLookup(WorkerDirectory& d, unsigned from, uint64_t ticket) : dir_(d), from_(from), ticket_(ticket) {}
  void on_route(const RouteLookup& r) override {
    std::optional<tunnel::VisitorPolicy> policy;
    if (r.kind == RouteLookup::Kind::kFound) {
      if (VisitorGate* g = dir_.local_.visitor_gate(r)) policy = g->policy();
    }
    dir_.post_to(from_, [near = dir_.workers_[from_], t = ticket_, w = dir_.index_, route = RouteLookup(r),
                         p = std::move(policy)]() mutable {
      near->on_remote_route(t, w, std::move(route), std::move(p));
    });
    dir_.far_lookups_.erase({from_, ticket_});  // destroys *this: nothing after
  }
  uint64_t local_ticket = 0;

 private:
  WorkerDirectory& dir_;
  unsigned from_;
  uint64_t ticket_;
};

// The far half of a hop: the real request stream on this worker's TunnelService.
class WorkerDirectory::FarHop final : public RequestStreamEvents {
 public:
  FarHop(WorkerDirectory& d, unsigned from, uint64_t hop, RouteLookup route, std::string client)
      : dir(d), from(from), hop(hop), route(std::move(route)), client(std::move(client)) {}

  void on_response_data(std::span<const uint8_t> data, bool fin) override {
    if (dead) return;
    dir.post_to(from, [near = dir.workers_[from], h = hop, w = dir.index_, r = real,
                       bytes = std::vector<uint8_t>(data.begin(), data.end()),
                       fin]() mutable { near->on_response(h, w, r, std::move(bytes), fin); });
  }
  void on_request_writable() override {
    if (!dead) dir.far_pump(*this);
  }
  void on_stream_aborted(std::optional<uint32_t> code, std::string_view reason) override {
    if (dead) return;
    dir.post_to(from, [near = dir.workers_[from], h = hop, code, why = std::string(reason)] {
      near->on_aborted(h, code, why);
    });
    dir.far_forget(*this);
  }
  void on_request_stopped(std::optional<uint32_t> code) override {
    if (dead) return;
    dir.post_to(from, [near = dir.workers_[from], h = hop, code] { near->on_stopped(h, code); });
  }

  WorkerDirectory& dir;
  const unsigned from;
  const uint64_t hop;
  RouteLookup route;
  std::string client;
  StreamRef real;
  bool opened = false;
  bool dead = false;             // forgotten; erased at the next turn of the loop
  std::vector<uint8_t> pending;  // request bytes the real stream has not taken, from pos
  size_t pos = 0;
  bool fin_pending = false, fin_sent = false;
  bool release_after_fin = false;  // released by the near half while bytes were still pending
  SteadyTime open_deadline{};
  bool waiting = false;  // for a retry of open_request
};

// A relay another worker's WebTransport session holds on a session here: what the session tells it
// goes back to that worker.
class WorkerDirectory::FarRelay final : public WtRelayPeer {
 public:
  FarRelay(WorkerDirectory& d, unsigned from, uint64_t id, RouteLookup route)
      : dir(d), from(from), id(id), route(std::move(route)) {}
  RequestStreamEvents* on_agent_stream(const StreamRef& ref, bool uni) override {
    return dir.far_agent_stream(*this, ref, uni);
  }
  void on_relay_datagram(std::span<const uint8_t> payload) override;
  void on_relay_refused(std::string_view /*reason*/) override {}  // a local session never does

  WorkerDirectory& dir;
  const unsigned from;
  const uint64_t id;
  const RouteLookup route;  // with the session's serial here
};

// A UDP flow another worker's client holds on a udp tunnel here: what the tunnel tells it goes back to
// that worker.
class WorkerDirectory::FarUdp final : public UdpFlowClient {
 public:
  FarUdp(WorkerDirectory& d, unsigned from, uint64_t id) : dir(d), from(from), id(id) {}
  void on_udp_packet(std::span<const uint8_t> payload) override;
  void on_udp_flow_end(std::string_view why) override;
  void on_udp_flow_opened(ClientOpen /*result*/) override {}  // a worker's own tunnels answer at once

  WorkerDirectory& dir;
  const unsigned from;
  const uint64_t id;
  UdpClientFlow real;
};

}  // namespace wtmesh::edge
