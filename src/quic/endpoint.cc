#include "quic/endpoint.h"

#include <gnutls/crypto.h>
#include <netinet/in.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/post.hpp>
#include <algorithm>
#include <cerrno>
#include <cstring>

#include "quic/tls_context.h"

namespace wtmesh::quic {

namespace asio = boost::asio;
using asio::ip::udp;

namespace {

constexpr size_t kScidLen = 18;
constexpr int kMaxReadsPerWake = 64;  // bounded work per readable event, so timers still run
constexpr size_t kMaxPacket = 65536;

std::string cid_key(const uint8_t* data, size_t len) { return std::string(reinterpret_cast<const char*>(data), len); }

}  // namespace

Endpoint::Endpoint(asio::io_context& io, const udp::endpoint& bind) : io_(io), socket_(io) {
  boost::system::error_code ec;
  socket_.open(bind.protocol(), ec);
  if (!ec) socket_.bind(bind, ec);
  if (ec) {
    throw boost::system::system_error(ec, "cannot bind UDP " + bind.address().to_string() + ":" +
                                              std::to_string(bind.port()));
  }
  socket_.non_blocking(true);
  // Large socket buffers absorb bursts from many streams (see docs/performance notes).
  const int buf = 4 << 20;
  setsockopt(socket_.native_handle(), SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
  setsockopt(socket_.native_handle(), SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  const auto local = socket_.local_endpoint();
  local_addrlen_ = static_cast<socklen_t>(local.size());
  std::memcpy(&local_addr_, local.data(), local.size());
  gnutls_rnd(GNUTLS_RND_RANDOM, reset_secret_.data(), reset_secret_.size());
  rxbuf_.resize(kMaxPacket);
  start_read();
}

Endpoint::~Endpoint() {
  for (auto& [conn, entry] : conns_) entry->conn->abandon("endpoint destroyed");
  conns_.clear();
}

udp::endpoint Endpoint::local_endpoint() const { return socket_.local_endpoint(); }

void Endpoint::listen(ServerOptions options) {
  options_ = std::move(options);
  server_ = true;
}

void Endpoint::add_cid(const ngtcp2_cid& cid, Connection* conn) {
  routes_[cid_key(cid.data, cid.datalen)] = conn;
  if (Entry* e = find(conn)) e->cids.push_back(cid_key(cid.data, cid.datalen));
}

void Endpoint::remove_cid(const ngtcp2_cid& cid) { routes_.erase(cid_key(cid.data, cid.datalen)); }

void Endpoint::stateless_reset_token(uint8_t* token, const ngtcp2_cid& cid) {
  ngtcp2_crypto_generate_stateless_reset_token(token, reset_secret_.data(), reset_secret_.size(), &cid);
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
  // CIDs registered while the connection was being created (before it had an entry).
  for (auto& [key, c] : routes_) {
    if (c == raw) e->cids.push_back(key);
  }
  raw->set_flush_hook([this, raw] {
    Entry* en = find(raw);
    if (!en || en->flush_posted) return;
    en->flush_posted = true;
    asio::post(io_, [this, raw, alive = std::weak_ptr<int>(alive_)] {
      if (alive.expired()) return;
      Entry* again = find(raw);
      if (!again) return;
      again->flush_posted = false;
      service(raw);
    });
  });
  return e;
}

Connection* Endpoint::connect(const udp::endpoint& remote, const std::string& host, const TlsClientContext& tls,
                              const TransportLimits& limits, std::string* error) {
  ngtcp2_path_storage ps;
  ngtcp2_path_storage_init(&ps, reinterpret_cast<const sockaddr*>(&local_addr_), local_addrlen_,
                           reinterpret_cast<const sockaddr*>(remote.data()), static_cast<socklen_t>(remote.size()),
                           nullptr);
  auto conn = Connection::connect(ps.path, host, tls, limits, *this, now_ts(), error);
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
  socket_.async_wait(udp::socket::wait_read, [this, alive = std::weak_ptr<int>(alive_)](
                                                  const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;  // socket closed
    on_readable();
    if (socket_.is_open()) start_read();
  });
}

void Endpoint::on_readable() {
  std::vector<Connection*> touched;
  const Timestamp now = now_ts();
  for (int i = 0; i < kMaxReadsPerWake; ++i) {
    ngtcp2_sockaddr_union from{};
    iovec iov{rxbuf_.data(), rxbuf_.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    const ssize_t n = ::recvmsg(socket_.native_handle(), &msg, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) break;
      spdlog::debug("quic: recvmsg: {}", std::strerror(errno));
      break;
    }
    ++stats_.packets_in;
    Connection* c = handle_packet({rxbuf_.data(), static_cast<size_t>(n)},
                                  reinterpret_cast<const sockaddr*>(&from), msg.msg_namelen, now);
    if (c && std::find(touched.begin(), touched.end(), c) == touched.end()) touched.push_back(c);
  }
  // Write after the whole batch so ACKs and responses for many packets share packets.
  for (Connection* c : touched) {
    if (find(c)) service(c);
  }
}

Connection* Endpoint::handle_packet(std::span<const uint8_t> pkt, const sockaddr* from, socklen_t fromlen,
                                    Timestamp now) {
  ngtcp2_version_cid vc{};
  const int rv = ngtcp2_pkt_decode_version_cid(&vc, pkt.data(), pkt.size(), kScidLen);
  if (rv == NGTCP2_ERR_VERSION_NEGOTIATION) {
    if (server_) send_version_negotiation(vc, from, fromlen);
    return nullptr;
  }
  if (rv != 0) return nullptr;

  ngtcp2_path path{};
  path.local.addr = reinterpret_cast<sockaddr*>(&local_addr_);
  path.local.addrlen = local_addrlen_;
  path.remote.addr = const_cast<sockaddr*>(from);
  path.remote.addrlen = fromlen;
  ngtcp2_pkt_info pi{};

  auto route = routes_.find(cid_key(vc.dcid, vc.dcidlen));
  if (route != routes_.end()) {
    Connection* conn = route->second;
    if (!conn->read_packet(path, pi, pkt, now)) {
      remove(conn);
      return nullptr;
    }
    return conn;
  }
  if (!server_ || shutting_down_) return nullptr;
  if ((pkt[0] & 0x80) == 0) {
    send_stateless_reset(pkt, vc, from, fromlen);
    return nullptr;
  }
  ngtcp2_pkt_hd hd{};
  if (ngtcp2_accept(&hd, pkt.data(), pkt.size()) != 0) return nullptr;  // not a valid Initial: drop
  if (conns_.size() >= options_.max_connections) {
    ++stats_.refused;
    spdlog::warn("quic: refusing new connection: {} connections open (limit)", conns_.size());
    return nullptr;
  }
  std::string error;
  auto conn = Connection::accept(hd, path, options_.tls, options_.limits, *this, now, &error);
  if (!conn) {
    ++stats_.refused;
    spdlog::warn("quic: cannot accept connection: {}", error);
    return nullptr;
  }
  Connection* raw = conn.get();
  adopt(std::move(conn));
  if (options_.on_connection) options_.on_connection(*raw);
  if (!raw->read_packet(path, pi, pkt, now)) {
    remove(raw);
    return nullptr;
  }
  return raw;
}

void Endpoint::send_to(const sockaddr* to, socklen_t tolen, std::span<const uint8_t> pkt) {
  iovec iov{const_cast<uint8_t*>(pkt.data()), pkt.size()};
  msghdr msg{};
  msg.msg_name = const_cast<sockaddr*>(to);
  msg.msg_namelen = tolen;
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  for (;;) {
    const ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_DONTWAIT);
    if (n >= 0) {
      ++stats_.packets_out;
      return;
    }
    if (errno == EINTR) continue;
    // EAGAIN: the socket buffer is full. QUIC recovers lost packets; dropping here is what the
    // network would have done, and congestion control backs off.
    spdlog::debug("quic: sendmsg: {}", std::strerror(errno));
    return;
  }
}

void Endpoint::send_packet(const ngtcp2_path& path, std::span<const uint8_t> pkt) {
  send_to(path.remote.addr, path.remote.addrlen, pkt);
}

void Endpoint::send_version_negotiation(const ngtcp2_version_cid& vc, const sockaddr* to, socklen_t tolen) {
  std::array<uint8_t, 256> buf{};
  uint8_t unused = 0;
  gnutls_rnd(GNUTLS_RND_NONCE, &unused, 1);
  const uint32_t versions[] = {NGTCP2_PROTO_VER_V1, NGTCP2_PROTO_VER_V2};
  // Swap the ids: our SCID is the client's DCID and vice versa (RFC 9000 §17.2.1).
  const ngtcp2_ssize n = ngtcp2_pkt_write_version_negotiation(buf.data(), buf.size(), unused, vc.scid, vc.scidlen,
                                                              vc.dcid, vc.dcidlen, versions, 2);
  if (n > 0) {
    ++stats_.version_negotiations;
    send_to(to, tolen, {buf.data(), static_cast<size_t>(n)});
  }
}

void Endpoint::send_stateless_reset(std::span<const uint8_t> pkt, const ngtcp2_version_cid& vc, const sockaddr* to,
                                    socklen_t tolen) {
  // A reset must be smaller than the packet that triggered it, so two endpoints can never loop.
  constexpr size_t kMinReset = 1 + NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN;
  if (pkt.size() <= kMinReset || vc.dcidlen == 0) return;
  const size_t total = std::min<size_t>(pkt.size() - 1, 43);
  const size_t randlen = total - 1 - NGTCP2_STATELESS_RESET_TOKENLEN;
  ngtcp2_cid cid;
  ngtcp2_cid_init(&cid, vc.dcid, vc.dcidlen);
  std::array<uint8_t, NGTCP2_STATELESS_RESET_TOKENLEN> token{};
  stateless_reset_token(token.data(), cid);
  std::array<uint8_t, 64> rand{};
  gnutls_rnd(GNUTLS_RND_NONCE, rand.data(), randlen);
  std::array<uint8_t, 64> buf{};
  const ngtcp2_ssize n = ngtcp2_pkt_write_stateless_reset(buf.data(), buf.size(), token.data(), rand.data(), randlen);
  if (n > 0) {
    ++stats_.stateless_resets;
    send_to(to, tolen, {buf.data(), static_cast<size_t>(n)});
  }
}

void Endpoint::service(Connection* conn) {
  Entry* e = find(conn);
  if (!e) return;
  conn->write_packets(now_ts(), [this](const ngtcp2_path& path, std::span<const uint8_t> pkt) {
    send_packet(path, pkt);
  });
  if (conn->state() == Connection::State::kClosed) {
    remove(conn);
    return;
  }
  arm_timer(*e);
}

void Endpoint::arm_timer(Entry& e) {
  const Timestamp expiry = e.conn->expiry();
  if (expiry == UINT64_MAX) {
    e.timer.cancel();
    return;
  }
  const Timestamp now = now_ts();
  const auto delay = std::chrono::nanoseconds(expiry > now ? expiry - now : 0);
  e.timer.expires_after(delay);
  Connection* raw = e.conn.get();
  e.timer.async_wait([this, raw, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;  // re-armed or cancelled, or the endpoint is gone
    Entry* en = find(raw);
    if (!en) return;
    if (!raw->handle_expiry(now_ts())) {
      remove(raw);
      return;
    }
    service(raw);
  });
}

void Endpoint::remove(Connection* conn) {
  auto it = conns_.find(conn);
  if (it == conns_.end()) return;
  std::unique_ptr<Entry> entry = std::move(it->second);
  conns_.erase(it);
  for (const auto& key : entry->cids) {
    auto r = routes_.find(key);
    if (r != routes_.end() && r->second == conn) routes_.erase(r);
  }
  entry->timer.cancel();
  entry->conn->abandon("connection removed");
  if (on_removed_) on_removed_(*entry->conn);
  if (shutting_down_ && conns_.empty()) socket_.close();
}

void Endpoint::shutdown(uint64_t app_error, std::string_view reason) {
  shutting_down_ = true;
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
