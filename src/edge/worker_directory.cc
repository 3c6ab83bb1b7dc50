#include "edge/worker_directory.h"

#include <boost/asio/post.hpp>
#include <charconv>
#include <utility>

#include "common/time.h"
#include "edge/worker_directory_hops.h"

namespace wtmesh::edge {

namespace asio = boost::asio;

std::string worker_edge_id(std::string_view edge, unsigned worker) {
  return std::string(edge) + "/w" + std::to_string(worker);
}

std::optional<unsigned> worker_of(std::string_view edge_id, std::string_view edge) {
  if (edge_id.size() < edge.size() + 3 || edge_id.substr(0, edge.size()) != edge) return std::nullopt;
  std::string_view rest = edge_id.substr(edge.size());
  if (rest.substr(0, 2) != "/w") return std::nullopt;
  rest.remove_prefix(2);
  unsigned w = 0;
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), w);
  if (ec != std::errc() || end != rest.data() + rest.size()) return std::nullopt;
  return w;
}

// --- set-up ------------------------------------------------------------------------------------

WorkerDirectory::WorkerDirectory(asio::io_context& io, unsigned index, std::string edge,
                                 TunnelDirectory& local, RouteTable& routes,
                                 std::shared_ptr<VisitorEnvironment> visitor_env)
    : io_(io),
      index_(index),
      edge_(std::move(edge)),
      local_(local),
      routes_(routes),
      visitor_env_(std::move(visitor_env)),
      open_retry_(io) {}

WorkerDirectory::~WorkerDirectory() {
  // The local service must not call into halves that are gone.
  for (auto& [key, l] : lookups_) {
    if (l->local_ticket != 0) local_.cancel_route(l->local_ticket);
  }
  for (auto& [key, l] : far_lookups_) {
    if (l->local_ticket != 0) local_.cancel_route(l->local_ticket);
  }
  for (auto& [key, h] : far_) {
    if (h->opened && !h->dead) local_.release(h->real);
  }
  for (auto& [key, r] : far_relays_) local_.remove_relay(r->route, r->id);
  for (auto& [key, f] : far_udp_) udp_->close_client_flow(f->real);
}

void WorkerDirectory::set_workers(std::vector<WorkerDirectory*> all) { workers_ = std::move(all); }

void WorkerDirectory::flush_outbox() {
  for (size_t w = 0; w < outbox_.size(); ++w) {
    if (outbox_[w].empty()) continue;
    asio::post(workers_[w]->io_, [batch = std::exchange(outbox_[w], {})]() mutable {
      for (auto& message : batch) message();
    });
  }
}

uint64_t WorkerDirectory::remote_session(unsigned worker, uint64_t serial) {
  return kRemoteBit | (uint64_t{worker} << 48) | (serial & ((uint64_t{1} << 48) - 1));
}

// --- near: routes ------------------------------------------------------------------------------

uint64_t WorkerDirectory::route_of(std::string_view type, std::string_view host, RouteEvents* events) {
  const uint64_t ticket = ++last_ticket_;
  lookups_.emplace(ticket, std::make_unique<Lookup>(*this, ticket, events, type, host));
  const uint64_t outer = std::exchange(asking_, ticket);
  answered_inline_ = false;
  routes_.lookup(type, host, std::chrono::steady_clock::now(),
                 [this, alive = std::weak_ptr<int>(alive_), ticket](const RouteMatch& m) {
                   if (!alive.expired()) on_owner(ticket, m);
                 });
  const bool inline_answer = answered_inline_;
  asking_ = outer;
  answered_inline_ = false;
  return inline_answer ? 0 : ticket;
}

void WorkerDirectory::on_owner(uint64_t ticket, const RouteMatch& m) {
  auto it = lookups_.find(ticket);
  if (it == lookups_.end()) return;  // cancelled
  Lookup& l = *it->second;
  const std::optional<unsigned> owner = m.live() ? worker_of(m.edge_id, edge_) : std::nullopt;
  if (owner && *owner != index_ && *owner < workers_.size()) {
    post_to(*owner, [far = workers_[*owner], from = index_, ticket, type = l.type, host = l.host] {
      far->far_route(from, ticket, type, host);
    });
    return;
  }
  // Here, nowhere, or offline: the local service answers as it would alone (it looks again).
  const std::string type = l.type, host = l.host;
  const uint64_t local_ticket = local_.route_of(type, host, &l);  // an inline answer destroys l
  if (local_ticket != 0) {
    if (auto again = lookups_.find(ticket); again != lookups_.end())
      again->second->local_ticket = local_ticket;
  }
}

void WorkerDirectory::answer(uint64_t ticket, const RouteLookup& r) {
  auto it = lookups_.find(ticket);
  if (it == lookups_.end()) return;
  std::unique_ptr<Lookup> l = std::move(it->second);
  lookups_.erase(it);
  if (ticket == asking_) answered_inline_ = true;
  l->events->on_route(r);
}

void WorkerDirectory::on_remote_route(uint64_t ticket, unsigned worker, RouteLookup r,
                                      std::optional<tunnel::VisitorPolicy> policy) {
  if (lookups_.count(ticket) == 0) return;  // cancelled meanwhile
  if (r.kind == RouteLookup::Kind::kFound) {
    const auto key = std::make_tuple(worker, r.session, r.tunnel_id);
    if (policy && !policy->empty()) {
      auto g = gates_.find(key);
      if (g == gates_.end()) {
        if (gates_.size() >= kMaxRemoteGates) gates_.erase(gates_.begin());  // never the one made now
        g = gates_.emplace(key, nullptr).first;
      }
      if (!g->second || g->second->policy() != *policy)
        g->second = std::make_unique<VisitorGate>(std::move(*policy), visitor_env_);
    } else {
      gates_.erase(key);
    }
    r.session = remote_session(worker, r.session);
  }
  answer(ticket, r);
}

void WorkerDirectory::cancel_route(uint64_t ticket) {
  auto it = lookups_.find(ticket);
  if (it == lookups_.end()) return;
  if (it->second->local_ticket != 0) local_.cancel_route(it->second->local_ticket);
  lookups_.erase(it);  // a remote answer still coming finds nothing
}

VisitorGate* WorkerDirectory::visitor_gate(const RouteLookup& route) {
  if (!remote(route.session)) return local_.visitor_gate(route);
  if (route.kind != RouteLookup::Kind::kFound) return nullptr;
  auto g = gates_.find(std::make_tuple(worker_in(route.session), serial_in(route.session), route.tunnel_id));
  return g == gates_.end() ? nullptr : g->second.get();
}

// --- near: streams -----------------------------------------------------------------------------

TunnelDirectory::OpenStatus WorkerDirectory::open_request(const RouteLookup& route, std::string_view client,
                                                          RequestStreamEvents* events, StreamRef* out) {
  if (!remote(route.session)) return local_.open_request(route, client, events, out);
  const unsigned w = worker_in(route.session);
  if (w >= workers_.size() || w == index_) return OpenStatus::kGone;
  const uint64_t hop = ++last_hop_;
  NearHop& h = near_[hop];
  h.events = events;
  h.worker = w;
  *out = StreamRef{kRemoteBit | hop, 0, route.request_trailers};
  RouteLookup far_route = route;
  far_route.session = serial_in(route.session);
  post_to(w, [far = workers_[w], from = index_, hop, far_route, c = std::string(client)]() mutable {
    far->far_open(from, hop, std::move(far_route), std::move(c));
  });
  ++hops_opened_;
  return OpenStatus::kOpened;
}

WorkerDirectory::NearHop* WorkerDirectory::near(const StreamRef& ref) {
  auto it = near_.find(ref.session & ~kRemoteBit);
  return it == near_.end() ? nullptr : &it->second;
}

size_t WorkerDirectory::write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) {
  if (!remote(ref.session)) return local_.write(ref, data, fin);
  NearHop* h = near(ref);
  if (h == nullptr || h->closed || h->aborted || h->fin_written) return 0;
  const size_t n = std::min(data.size(), kRequestWindow - h->in_flight);
  const bool all = n == data.size();
  if (!all) h->held = true;
  if (n == 0 && !(all && fin)) return 0;
  h->in_flight += n;
  h->fin_written = all && fin;
  const uint64_t hop = ref.session & ~kRemoteBit;
  post_to(h->worker, [far = workers_[h->worker], from = index_, hop,
                      bytes = std::vector<uint8_t>(data.begin(), data.begin() + static_cast<ptrdiff_t>(n)),
                      f = h->fin_written]() mutable { far->far_write(from, hop, std::move(bytes), f); });
  return n;
}

size_t WorkerDirectory::send_capacity(const StreamRef& ref) {
  if (!remote(ref.session)) return local_.send_capacity(ref);
  const NearHop* h = near(ref);
  return h == nullptr || h->closed || h->aborted || h->fin_written ? 0 : kRequestWindow - h->in_flight;
}

void WorkerDirectory::consume(const StreamRef& ref, size_t n) {
  if (!remote(ref.session)) return local_.consume(ref, n);
  NearHop* h = near(ref);
  if (h == nullptr) return;
  h->consumed += n;
  if (h->real.valid()) {
    post_to(h->worker, [far = workers_[h->worker], r = h->real, n] { far->local_.consume(r, n); });
  }
  maybe_forget(ref.session & ~kRemoteBit);
}

void WorkerDirectory::cancel(const StreamRef& ref, uint32_t code) {
  if (!remote(ref.session)) return local_.cancel(ref, code);
  near_end(ref, code);
}

void WorkerDirectory::release(const StreamRef& ref) {
  if (!remote(ref.session)) return local_.release(ref);
  near_end(ref, std::nullopt);
}

void WorkerDirectory::near_end(const StreamRef& ref, std::optional<uint32_t> cancel_code) {
  NearHop* h = near(ref);
  if (h == nullptr || h->closed) return;
  h->closed = true;
  h->events = nullptr;
  const uint64_t hop = ref.session & ~kRemoteBit;
  post_to(h->worker, [far = workers_[h->worker], from = index_, hop, cancel_code] {
    far->far_end(from, hop, cancel_code);
  });
  maybe_forget(hop);
}

void WorkerDirectory::maybe_forget(uint64_t hop) {
  auto it = near_.find(hop);
  if (it == near_.end()) return;
  const NearHop& h = it->second;
  // The exchange may still consume what it was given (also after release); then nothing is owed.
  if ((h.closed || h.aborted) && h.consumed >= h.delivered) near_.erase(it);
}

// --- near: what the far half reports --------------------------------------------------------------

void WorkerDirectory::on_opened(uint64_t hop, StreamRef real) {
  auto it = near_.find(hop);
  if (it != near_.end()) it->second.real = real;
}

void WorkerDirectory::on_written(uint64_t hop, size_t n) {
  auto it = near_.find(hop);
  if (it == near_.end()) return;
  NearHop& h = it->second;
  h.in_flight -= std::min(n, h.in_flight);
  if (!h.held || h.events == nullptr || h.closed) return;
  h.held = false;
  h.events->on_request_writable();
}

void WorkerDirectory::on_response(uint64_t hop, unsigned worker, StreamRef real, std::vector<uint8_t> data,
                                  bool fin) {
  auto it = near_.find(hop);
  if (it == near_.end() || it->second.events == nullptr) {
    // Nobody takes these any more: give their credit back at once.
    if (!data.empty())
      post_to(worker, [far = workers_[worker], real, n = data.size()] { far->local_.consume(real, n); });
    return;
  }
  NearHop& h = it->second;
  h.delivered += data.size();
  RequestStreamEvents* events = h.events;
  if (fin) h.events = nullptr;          // terminal: no more events
  events->on_response_data(data, fin);  // may cancel, release or consume: h is not used after
}

void WorkerDirectory::on_aborted(uint64_t hop, std::optional<uint32_t> code, const std::string& reason) {
  auto it = near_.find(hop);
  if (it == near_.end()) return;
  NearHop& h = it->second;
  h.aborted = true;
  RequestStreamEvents* events = std::exchange(h.events, nullptr);
  if (events != nullptr) events->on_stream_aborted(code, reason);
  maybe_forget(hop);
}

void WorkerDirectory::on_refused(uint64_t hop, OpenStatus status, const std::string& reason) {
  auto it = near_.find(hop);
  if (it == near_.end()) return;
  NearHop& h = it->second;
  h.aborted = true;
  RequestStreamEvents* events = std::exchange(h.events, nullptr);
  if (events != nullptr) events->on_open_refused(status, reason);
  maybe_forget(hop);
}

void WorkerDirectory::on_stopped(uint64_t hop, std::optional<uint32_t> code) {
  auto it = near_.find(hop);
  if (it != near_.end() && it->second.events != nullptr) it->second.events->on_request_stopped(code);
}

// --- far ---------------------------------------------------------------------------------------

void WorkerDirectory::far_route(unsigned from, uint64_t ticket, const std::string& type,
                                const std::string& host) {
  auto l = std::make_unique<FarLookup>(*this, from, ticket);
  FarLookup* raw = l.get();
  far_lookups_[{from, ticket}] = std::move(l);
  const uint64_t local_ticket = local_.route_of(type, host, raw);  // an inline answer destroys raw
  if (local_ticket != 0) {
    if (auto again = far_lookups_.find({from, ticket}); again != far_lookups_.end())
      again->second->local_ticket = local_ticket;
  }
}

void WorkerDirectory::far_open(unsigned from, uint64_t hop, RouteLookup route, std::string client) {
  auto h = std::make_unique<FarHop>(*this, from, hop, std::move(route), std::move(client));
  h->open_deadline = std::chrono::steady_clock::now() + open_timeout_;
  FarHop& raw = *h;
  far_[{from, hop}] = std::move(h);
  far_try_open(raw);
}

void WorkerDirectory::far_try_open(FarHop& h) {
  h.waiting = false;
  const OpenStatus st = local_.open_request(h.route, h.client, &h, &h.real);
  if (st == OpenStatus::kOpened) {
    h.opened = true;
    post_to(h.from, [near = workers_[h.from], hop = h.hop, r = h.real] { near->on_opened(hop, r); });
    far_pump(h);
    return;
  }
  if (st != OpenStatus::kGone && std::chrono::steady_clock::now() < h.open_deadline) {
    h.waiting = true;
    arm_open_retry();
    return;
  }
  const char* why = st == OpenStatus::kGone ? "the tunnel's session ended"
                    : st == OpenStatus::kClientLimit
                        ? "this client holds as many of the tunnel's streams as it may"
                        : "the tunnel's session had no stream free";
  post_to(h.from, [near = workers_[h.from], hop = h.hop, st, why] { near->on_refused(hop, st, why); });
  far_forget(h);
}

void WorkerDirectory::arm_open_retry() {
  if (open_retry_armed_) return;
  open_retry_armed_ = true;
  open_retry_.expires_after(kOpenRetry);
  open_retry_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    open_retry_armed_ = false;
    retry_opens();
  });
}

void WorkerDirectory::retry_opens() {
  std::vector<FarKey> waiting;
  for (const auto& [key, h] : far_) {
    if (h->waiting && !h->dead) waiting.push_back(key);
  }
  for (const FarKey& key : waiting) {
    auto it = far_.find(key);
    if (it != far_.end() && it->second->waiting && !it->second->dead) far_try_open(*it->second);
  }
}

void WorkerDirectory::far_write(unsigned from, uint64_t hop, std::vector<uint8_t> data, bool fin) {
  auto it = far_.find({from, hop});
  if (it == far_.end() || it->second->dead) return;  // aborted meanwhile: the near half heard it
  FarHop& h = *it->second;
  if (h.pos > 0 && h.pos == h.pending.size()) {
    h.pending.clear();
    h.pos = 0;
  }
  h.pending.insert(h.pending.end(), data.begin(), data.end());
  h.fin_pending = h.fin_pending || fin;
  if (h.opened) far_pump(h);
}

void WorkerDirectory::far_pump(FarHop& h) {
  if (!h.opened || h.fin_sent || h.dead) return;
  const std::span<const uint8_t> rest(h.pending.data() + h.pos, h.pending.size() - h.pos);
  if (rest.empty() && !h.fin_pending) return;
  const size_t n = local_.write(h.real, rest, h.fin_pending);
  if (n == rest.size() && h.fin_pending) h.fin_sent = true;
  h.pos += n;
  if (h.pos == h.pending.size() || h.pos > (64u << 10)) {
    h.pending.erase(h.pending.begin(), h.pending.begin() + static_cast<ptrdiff_t>(h.pos));
    h.pos = 0;
  }
  if (n > 0) post_to(h.from, [near = workers_[h.from], hop = h.hop, n] { near->on_written(hop, n); });
  if (h.fin_sent && h.release_after_fin) {
    local_.release(h.real);
    far_forget(h);
  }
}

void WorkerDirectory::far_end(unsigned from, uint64_t hop, std::optional<uint32_t> cancel_code) {
  auto it = far_.find({from, hop});
  if (it == far_.end() || it->second->dead) return;
  FarHop& h = *it->second;
  if (h.opened) {
    if (cancel_code) {
      local_.cancel(h.real, *cancel_code);
    } else if (h.fin_pending && !h.fin_sent) {
      h.release_after_fin = true;  // the request's last bytes still go out first
      return;
    } else {
      local_.release(h.real);
    }
  }
  far_forget(h);
}

void WorkerDirectory::far_forget(FarHop& h) {
  // Often called from inside the local service's call into h: erased once that call returned.
  h.dead = true;
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), key = FarKey{h.from, h.hop}] {
    if (alive.expired()) return;
    auto it = far_.find(key);
    if (it != far_.end() && it->second->dead) far_.erase(it);
  });
}

bool WorkerDirectory::ask_hand_over(const std::string& holder, std::string type, std::string name,
                                    std::string instance, std::string subject,
                                    std::function<void(bool)> done) {
  const size_t slash = holder.rfind('/');
  if (slash == std::string::npos) return false;
  const std::optional<unsigned> owner = worker_of(std::string_view(holder).substr(0, slash), edge_);
  if (!owner || *owner == index_ || *owner >= workers_.size()) return false;
  const uint64_t ticket = ++last_hand_over_;
  hand_overs_.emplace(ticket, std::move(done));
  post_to(*owner, [far = workers_[*owner], from = index_, ticket, holder, type = std::move(type),
                   name = std::move(name), instance = std::move(instance), subject = std::move(subject)] {
    far->far_hand_over(from, ticket, holder, type, name, instance, subject);
  });
  return true;
}

void WorkerDirectory::far_hand_over(unsigned from, uint64_t ticket, const std::string& holder,
                                    const std::string& type, const std::string& name,
                                    const std::string& instance, const std::string& subject) {
  // The route is released (or not) now, before the answer leaves: the near session claims it again.
  const bool handed = local_hand_over_ && local_hand_over_(holder, RouteKey{type, name}, instance, subject);
  post_to(from, [near = workers_[from], ticket, handed] { near->on_hand_over(ticket, handed); });
}

void WorkerDirectory::on_hand_over(uint64_t ticket, bool handed) {
  auto it = hand_overs_.find(ticket);
  if (it == hand_overs_.end()) return;
  std::function<void(bool)> done = std::move(it->second);
  hand_overs_.erase(it);
  done(handed);
}

}  // namespace wtmesh::edge
