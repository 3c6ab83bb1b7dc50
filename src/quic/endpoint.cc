#include "quic/endpoint.h"

#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "quic/tls_context.h"

namespace wtmesh::quic {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

// Bounded work per readable event, so timers and other connections still run: at most this many
// datagrams (GRO segments counted one by one), about 1.5 MB at 1452 bytes.
constexpr size_t kMaxDatagramsPerWake = 1024;
// Within a wakeup, touched connections write (ACKs, replies) after about this many datagrams: one
// ACK for a whole wakeup's worth would leave the sender idle with its window spent.
constexpr size_t kFlushEvery = 64;
// A pending timer wait due within kRearmWindow whose deadline moved at least kRearmGain later is
// moved with it (arm_timer); farther ones fire early and re-arm, which several moves may share.
constexpr Timestamp kRearmWindow = 5 * NGTCP2_MILLISECONDS;
constexpr Timestamp kRearmGain = NGTCP2_MILLISECONDS;

}  // namespace

// Hands one connection's trains to the socket, parking what it does not take.
class Endpoint::EntrySink final : public TrainSink {
 public:
  EntrySink(Endpoint& ep, Entry& e) : ep_(ep), e_(e) {}
  bool send_train(const GsoTrain& train) override { return ep_.send_train(e_, train); }

 private:
  Endpoint& ep_;
  Entry& e_;
};

Endpoint::Endpoint(asio::io_context& io, const udp::endpoint& bind, bool reuse_port) : io_(io), socket_(io) {
  boost::system::error_code ec;
  socket_.open(bind.protocol(), ec);
  if (!ec && reuse_port) {
    const int on = 1;
    if (::setsockopt(socket_.native_handle(), SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
      ec.assign(errno, boost::system::system_category());
  }
  if (!ec) socket_.bind(bind, ec);
  if (ec) {
    throw boost::system::system_error(
        ec, "cannot bind UDP " + bind.address().to_string() + ":" + std::to_string(bind.port()));
  }
  socket_.non_blocking(true);
  udp_ = std::make_unique<UdpSocketIo>(socket_.native_handle());
  const auto local = socket_.local_endpoint();
  local_addrlen_ = static_cast<socklen_t>(local.size());
  std::memcpy(&local_addr_, local.data(), local.size());
  start_read();
}

Endpoint::~Endpoint() {
  if (group_ != nullptr) group_->detach(worker_, *this);
  for (auto& [conn, entry] : conns_) entry->conn->abandon("endpoint destroyed");
  if (group_connections_) group_connections_->fetch_sub(conns_.size(), std::memory_order_relaxed);
  conns_.clear();
}

udp::endpoint Endpoint::local_endpoint() const { return socket_.local_endpoint(); }

void Endpoint::listen(ServerOptions options) {
  options_ = std::move(options);
  udp_->receive_icmp_errors(false);  // a server acts on no ICMP about its clients (close_unreachable)
  dispatcher_.set_options({.server = true,
                           .max_connections = options_.max_connections,
                           .address_limits = options_.address_limits,
                           .retry_above = options_.retry_above});
}

void Endpoint::join_group(EndpointGroup& group, size_t index) {
  dispatcher_.set_worker(static_cast<unsigned>(index), static_cast<unsigned>(group.size()));
  dispatcher_.set_secrets(group.reset_secret(), group.token_secret());
  dispatcher_.share_address_limits(group.address_limits());
  group_connections_ = group.connections();
  group_connections_->fetch_add(conns_.size(), std::memory_order_relaxed);
  group.attach(index, *this, io_);
  group_ = &group;
  worker_ = index;
  outbox_.assign(group.size(), ForwardBatch{});
}

void Endpoint::flush_forwards() {
  for (size_t w = 0; w < outbox_.size(); ++w) {
    ForwardBatch& b = outbox_[w];
    if (b.empty()) continue;
    const size_t n = b.items.size();
    const size_t queued = group_ != nullptr ? group_->forward(w, std::move(b)) : 0;
    stats_.forwarded_dropped += n - queued;  // forwarded_out is the dispatcher's count
    b = ForwardBatch{};
  }
}

void Endpoint::receive_forwarded(const ForwardBatch& batch) {
  if (!socket_.is_open()) return;
  touched_.clear();
  const Timestamp now = now_ts();
  for (const ForwardBatch::Item& i : batch.items) {
    ++stats_.packets_in;
    ++stats_.forwarded_in;
    Connection* c =
        handle_packet(batch.packet(i), reinterpret_cast<const sockaddr*>(&i.from), i.fromlen, now);
    if (c && std::find(touched_.begin(), touched_.end(), c) == touched_.end()) touched_.push_back(c);
  }
  service_touched(now);
}

EndpointStats Endpoint::stats() const {
  EndpointStats s = stats_;
  const DispatcherStats& d = dispatcher_.stats();
  s.version_negotiations = d.version_negotiations;
  s.stateless_resets = d.stateless_resets;
  s.refused += d.refused;
  s.refused_address_connections = d.refused_address_connections;
  s.refused_handshake_rate = d.refused_handshake_rate;
  s.retries = d.retries;
  s.invalid_tokens = d.invalid_tokens;
  s.forwarded_out = d.forwarded;
  return s;
}

Endpoint::Entry* Endpoint::find(Connection* conn) {
  auto it = conns_.find(conn);
  return it == conns_.end() ? nullptr : it->second.get();
}

Endpoint::Entry* Endpoint::adopt(std::unique_ptr<Connection> conn) {
  Connection* raw = conn.get();
  auto entry = std::make_unique<Entry>(io_);
  entry->conn = std::move(conn);
  Entry* e = entry.get();
  conns_.emplace(raw, std::move(entry));
  if (group_connections_) group_connections_->fetch_add(1, std::memory_order_relaxed);
  raw->set_flush_hook([this, raw] {
    if (Entry* en = find(raw)) post_flush(*en);
  });
  return e;
}

void Endpoint::post_flush(Entry& e) {
  if (e.flush_posted) return;
  e.flush_posted = true;
  Connection* raw = e.conn.get();
  asio::post(io_, [this, raw, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    Entry* again = find(raw);
    if (!again) return;
    again->flush_posted = false;
    service(raw);
  });
}

Connection* Endpoint::connect(const udp::endpoint& remote, const std::string& host,
                              const TlsClientContext& tls, const TransportLimits& limits, std::string* error,
                              const ResumptionTicket* resume) {
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_init(&ps, reinterpret_cast<const sockaddr*>(&local_addr_), local_addrlen_,
                           reinterpret_cast<const sockaddr*>(remote.data()),
                           static_cast<socklen_t>(remote.size()), nullptr);
  auto conn = Connection::connect(ps.path, host, tls, limits, dispatcher_, now_ts(), error, {}, resume);
  if (!conn) return nullptr;
  Connection* raw = conn.get();
  adopt(std::move(conn));
  // The first flight goes out once the caller has installed its handler and the loop runs.
  asio::post(io_, [this, raw, alive = std::weak_ptr<int>(alive_)] {
    if (!alive.expired() && find(raw)) service(raw);
  });
  return raw;
}

void Endpoint::start_read() {
  socket_.async_wait(udp::socket::wait_read,
                     [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
                       if (ec || alive.expired()) return;  // socket closed
                       on_readable();
                       if (socket_.is_open()) start_read();
                     });
}

void Endpoint::on_readable() {
  touched_.clear();
  size_t budget = kMaxDatagramsPerWake;
  size_t since_flush = 0;
  Timestamp now = now_ts();
  // (A flush can remove the last connection of a shutting-down endpoint, which closes the socket.)
  while (budget > 0 && socket_.is_open()) {
    const size_t n = udp_->read_batch();
    if (n == 0) break;
    now = now_ts();
    for (size_t i = 0; i < n; ++i) {
      const UdpSocketIo::Message m = udp_->message(i);
      for_each_segment(m.data, m.segment_size, [&](std::span<const uint8_t> pkt) {
        ++stats_.packets_in;
        ++since_flush;
        budget -= budget > 0 ? 1 : 0;
        Connection* c = handle_packet(pkt, m.from, m.fromlen, now);
        if (c && std::find(touched_.begin(), touched_.end(), c) == touched_.end()) touched_.push_back(c);
      });
      if (since_flush >= kFlushEvery) {
        service_touched(now);
        since_flush = 0;
        now = now_ts();  // ngtcp2 requires time to never go backwards
      }
    }
    // A short batch emptied the socket: another read would only return EAGAIN (one system call
    // per wake-up for nothing). Nothing is missed: start_read()'s async_wait re-arms the descriptor
    // (Asio's reactor does EPOLL_CTL_MOD for a wait), and epoll reports data that came meanwhile.
    if (n < UdpSocketIo::kRecvBatch) break;
  }
  service_touched(now);
  flush_forwards();
  post_unreachable();
}

namespace {

// Loopback, private (RFC 1918, RFC 4193) and link-local addresses, v4-mapped ones included.
bool local_scope(const sockaddr* a) {
  auto v4_local = [](uint32_t host_order) {
    const uint32_t a8 = host_order >> 24;
    return a8 == 127 || a8 == 10 || (host_order >> 20) == 0xAC1 || (host_order >> 16) == 0xC0A8 ||
           (host_order >> 16) == 0xA9FE;
  };
  if (a->sa_family == AF_INET) return v4_local(ntohl(reinterpret_cast<const sockaddr_in*>(a)->sin_addr.s_addr));
  if (a->sa_family != AF_INET6) return false;
  const in6_addr& v6 = reinterpret_cast<const sockaddr_in6*>(a)->sin6_addr;
  if (IN6_IS_ADDR_V4MAPPED(&v6)) {
    uint32_t v4 = 0;
    std::memcpy(&v4, v6.s6_addr + 12, sizeof(v4));
    return v4_local(ntohl(v4));
  }
  return IN6_IS_ADDR_LOOPBACK(&v6) || (v6.s6_addr[0] & 0xFE) == 0xFC || IN6_IS_ADDR_LINKLOCAL(&v6);
}

bool same_address(const sockaddr* a, const sockaddr* b) {
  if (a->sa_family != b->sa_family) return false;
  if (a->sa_family == AF_INET) {
    const auto* x = reinterpret_cast<const sockaddr_in*>(a);
    const auto* y = reinterpret_cast<const sockaddr_in*>(b);
    return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
  }
  if (a->sa_family == AF_INET6) {
    const auto* x = reinterpret_cast<const sockaddr_in6*>(a);
    const auto* y = reinterpret_cast<const sockaddr_in6*>(b);
    return x->sin6_port == y->sin6_port && std::memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(in6_addr)) == 0;
  }
  return false;
}

}  // namespace

void Endpoint::post_unreachable() {
  if (unreachable_posted_ || !udp_->has_unreachable()) return;
  unreachable_posted_ = true;
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_)] {
    if (alive.expired()) return;
    unreachable_posted_ = false;
    close_unreachable();
  });
}

void Endpoint::close_unreachable() {
  for (const UnreachableAddress& u : udp_->take_unreachable()) {
    const auto* addr = reinterpret_cast<const sockaddr*>(&u.address);
    if (!local_scope(addr)) continue;
    std::vector<Connection*> hit;
    for (auto& [c, e] : conns_) {
      if (!c->is_server() && same_address(c->path().remote.addr, addr)) hit.push_back(c);
    }
    for (Connection* c : hit) {
      if (!find(c)) continue;  // a close above took it
      spdlog::debug("quic: {}: ICMP port unreachable; closing", c->remote_address());
      c->peer_unreachable("the peer's UDP port is closed (ICMP port unreachable)");
      service(c);
    }
  }
}

void Endpoint::service_touched(Timestamp read_at) {
  // Write after the batch so ACKs and responses for many packets share packets. The write that
  // answers the batch happens, for ngtcp2, when the batch was read: handling a request (opening an
  // upstream connection, say) takes longer than ngtcp2's ack delay on a fast path (RTT / 8), and an
  // ACK "due" by then would leave on its own instead of waiting for the response (ack_defer).
  for (Connection* c : touched_) {
    if (find(c)) service(c, read_at);
  }
  touched_.clear();
}

Connection* Endpoint::handle_packet(std::span<const uint8_t> pkt, const sockaddr* from, socklen_t fromlen,
                                    Timestamp now) {
  const size_t open =
      group_connections_ ? group_connections_->load(std::memory_order_relaxed) : conns_.size();
  const Dispatcher::Decision d = dispatcher_.classify(pkt, open, from, fromlen, now);
  using Kind = Dispatcher::Decision::Kind;
  switch (d.kind) {
    case Kind::kDrop:
      return nullptr;
    case Kind::kReply:
      send_to(from, fromlen, dispatcher_.reply());
      return nullptr;
    case Kind::kRefuse:
      spdlog::warn("quic: refusing new connection: {} connections open (limit)", open);
      return nullptr;
    case Kind::kForward:
      if (d.worker < outbox_.size()) outbox_[d.worker].add(pkt, from, fromlen);
      return nullptr;
    case Kind::kRoute:
    case Kind::kAccept:
      break;
  }
  ngtcp2_path path{};
  path.local.addr = reinterpret_cast<sockaddr*>(&local_addr_);
  path.local.addrlen = local_addrlen_;
  path.remote.addr = const_cast<sockaddr*>(from);
  path.remote.addrlen = fromlen;
  const ngtcp2_pkt_info pi{};
  if (d.kind == Kind::kAccept) return accept(d, path, pi, pkt, now);
  if (!d.conn->read_packet(path, pi, pkt, now)) {
    remove(d.conn);
    return nullptr;
  }
  return d.conn;
}

Connection* Endpoint::accept(const Dispatcher::Decision& d, const ngtcp2_path& path,
                             const ngtcp2_pkt_info& pi, std::span<const uint8_t> pkt, Timestamp now) {
  std::string error;
  auto conn = Connection::accept(d.header, path, options_.tls, options_.limits, dispatcher_, now, &error,
                                 d.retry_original_dcid ? &*d.retry_original_dcid : nullptr);
  if (!conn) {
    ++stats_.refused;
    spdlog::warn("quic: cannot accept connection: {}", error);
    return nullptr;
  }
  Connection* raw = conn.get();
  Entry* e = adopt(std::move(conn));
  if (d.address) {
    e->address = d.address;
    dispatcher_.opened(*d.address);
  }
  if (options_.on_connection) options_.on_connection(*raw);
  if (!raw->read_packet(path, pi, pkt, now)) {
    remove(raw);
    return nullptr;
  }
  return raw;
}

void Endpoint::send_to(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> pkt) {
  size_t sent = 0;
  // A full socket drops it, as the network could: these packets are answers to strays.
  if (udp_->send(to, tolen, pkt, pkt.size(), &sent) == UdpSocketIo::SendResult::kSent) ++stats_.packets_out;
}

bool Endpoint::send_train(Entry& e, const GsoTrain& train) {
  const ngtcp2_addr& to = train.path().remote;
  // Keep the order: while older trains wait, newer ones wait behind them.
  if (!e.parked.empty()) {
    park(e, to.addr, to.addrlen, train.data(), train.segment_size());
    return false;
  }
  size_t sent = 0;
  const auto r = udp_->send(to.addr, to.addrlen, train.data(), train.segment_size(), &sent);
  stats_.packets_out += (sent + train.segment_size() - 1) / train.segment_size();
  if (r == UdpSocketIo::SendResult::kSent) return true;
  park(e, to.addr, to.addrlen, train.data().subspan(sent), train.segment_size());
  return false;
}

void Endpoint::park(Entry& e, const sockaddr* to, socklen_t tolen, std::span<const uint8_t> data,
                    size_t segment_size) {
  if (e.parked.size() >= kMaxParked) {
    ++stats_.parked_dropped;  // bounded: loss recovery resends it
    return;
  }
  ++stats_.send_blocked;
  Parked& p = e.parked.emplace_back();
  p.data.assign(data.begin(), data.end());
  std::memcpy(&p.to, to, std::min<size_t>(tolen, sizeof(p.to)));
  p.tolen = tolen;
  p.segment_size = segment_size;
  if (!e.blocked) {
    e.blocked = true;
    blocked_.push_back(e.conn.get());
  }
  wait_writable();
}

bool Endpoint::flush_parked(Entry& e) {
  while (!e.parked.empty()) {
    Parked& p = e.parked.front();
    size_t sent = 0;
    const auto r =
        udp_->send(reinterpret_cast<const sockaddr*>(&p.to), p.tolen, p.data, p.segment_size, &sent);
    stats_.packets_out += (sent + p.segment_size - 1) / p.segment_size;
    if (r == UdpSocketIo::SendResult::kBlocked) {
      p.data.erase(p.data.begin(), p.data.begin() + static_cast<std::ptrdiff_t>(sent));
      wait_writable();
      return false;
    }
    e.parked.erase(e.parked.begin());
  }
  return true;
}

void Endpoint::wait_writable() {
  if (write_wait_ || !socket_.is_open()) return;
  write_wait_ = true;
  socket_.async_wait(udp::socket::wait_write,
                     [this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
                       if (alive.expired()) return;
                       write_wait_ = false;
                       if (!ec) on_writable();
                     });
}

void Endpoint::on_writable() {
  while (!blocked_.empty()) {
    Entry* e = find(blocked_.front());
    if (e && !flush_parked(*e)) return;  // still full: flush_parked waits again
    blocked_.pop_front();
    if (!e) continue;
    e->blocked = false;
    service(e->conn.get());  // resume writing where congestion control allows
  }
}

void Endpoint::service(Connection* conn, Timestamp at) {
  Entry* e = find(conn);
  if (!e) return;
  if (!e->parked.empty() && !flush_parked(*e)) {
    arm_timer(*e);  // nothing new until the socket takes the parked trains
    return;
  }
  EntrySink sink(*this, *e);
  bool more = false;
  for (int round = 0; round < 2; ++round) {
    more = conn->write_packets(round == 0 && at != 0 ? at : now_ts(), tx_train_, sink);
    if (conn->state() == Connection::State::kClosed) {
      remove(conn);
      return;
    }
    if (more || !e->parked.empty()) break;
    // On fast paths ngtcp2's pacing deadline is often "now" right after a write: handle it here
    // rather than through a zero-delay timer, then write whatever it released.
    const Timestamp now = now_ts();
    if (conn->expiry() > now) break;
    // A peer that looks silent may have answered while this process was busy elsewhere: that is
    // judged only by the timer, which reads the socket first (arm_timer below fires at once).
    if (conn->unresponsive_due(now)) break;
    if (!conn->handle_expiry(now)) {
      remove(conn);
      return;
    }
  }
  if (more) post_flush(*e);  // the write budget ran out: continue after other work
  arm_timer(*e);
  post_unreachable();  // a send may have read the error queue
}

void Endpoint::arm_timer(Entry& e) {
  const Timestamp expiry = e.conn->expiry();
  // A pending wait that fires no later than needed stays: when it fires early, it only re-arms.
  // Re-arming on every packet would cost a timerfd update each time (a PTO moves with each one).
  // But a wait about to fire for a deadline that has moved well away (an ACK that was due left with
  // a response) is moved: a wake-up that finds nothing to do costs more than the timerfd update.
  if (expiry == kNever) return;
  const bool later = e.timer_deadline <= expiry;
  if (later) {
    if (expiry - e.timer_deadline < kRearmGain) return;
    if (e.timer_deadline > now_ts() + kRearmWindow) return;
  }
  e.timer_deadline = expiry;
  if (later) refresh_reactor_timeout();
  e.timer.expires_at(asio::steady_timer::time_point(
      std::chrono::duration_cast<asio::steady_timer::duration>(std::chrono::nanoseconds(expiry))));
  Connection* raw = e.conn.get();
  e.timer.async_wait([this, raw, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;  // replaced by another deadline, or the endpoint is gone
    Entry* en = find(raw);
    if (!en) return;
    en->timer_deadline = kNever;
    ++stats_.timer_wakeups;
    const uint64_t sent_before = stats_.packets_out;
    on_timer(*en);
    if (stats_.packets_out == sent_before) ++stats_.empty_timer_wakeups;
  });
}

void Endpoint::on_timer(Entry& e) {
  Connection* raw = e.conn.get();
  Timestamp now = now_ts();
  if (raw->expiry() > now) {
    arm_timer(e);
    return;
  }
  if (raw->unresponsive_due(now)) {
    // A process starved of CPU wakes up late, and the peer's answers may be waiting in the socket:
    // they are read before the silence is judged (reading may remove connections, this one too).
    on_readable();
    Entry* en = find(raw);
    if (!en) return;
    now = now_ts();
    if (raw->expiry() > now) {
      arm_timer(*en);
      return;
    }
  }
  if (!raw->handle_expiry(now)) {
    remove(raw);
    return;
  }
  service(raw);
}

void Endpoint::refresh_reactor_timeout() {
  if (reactor_refresh_pending_) return;
  reactor_refresh_pending_ = true;
  reactor_refresh_.expires_at(asio::steady_timer::time_point::min());
  reactor_refresh_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code&) {
    if (alive.expired()) return;
    reactor_refresh_pending_ = false;
  });
}

void Endpoint::remove(Connection* conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  std::unique_ptr<Entry> entry = std::move(it->second);
  conns_.erase(it);
  if (group_connections_) group_connections_->fetch_sub(1, std::memory_order_relaxed);
  dispatcher_.forget(conn);
  if (entry->address) dispatcher_.closed(*entry->address);
  entry->timer.cancel();
  if (entry->blocked) blocked_.erase(std::find(blocked_.begin(), blocked_.end(), conn));
  entry->conn->abandon("connection removed");
  if (on_removed_) on_removed_(*entry->conn);
  if (shutting_down_ && conns_.empty()) socket_.close();
}

void Endpoint::shutdown(uint64_t app_error, std::string_view reason) {
  shutting_down_ = true;
  dispatcher_.stop_accepting();
  if (conns_.empty()) {
    socket_.close();
    return;
  }
  std::vector<Connection*> all;
  for (auto& [c, e] : conns_) all.push_back(c);
  for (Connection* c : all) {
    c->close(app_error, reason);
    service(c);
  }
}

}  // namespace wtmesh::quic
