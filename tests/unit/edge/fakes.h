// Test doubles for the edge's sans-I/O parts: a wt::Session that records what it is asked to do, a
// TunnelDirectory with scripted routes and streams, and a settable clock.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../../support/response_head.h"
#include "common/varint.h"
#include "edge/tunnel_directory.h"
#include "edge/visitor_gate.h"
#include "tunnel/websocket_handshake.h"
#include "tunnel/wire.h"
#include "wt/session.h"

namespace wtmesh::edge::test {

struct FakeClock {
  std::chrono::steady_clock::time_point t = std::chrono::steady_clock::time_point(std::chrono::hours(1000));
  std::function<std::chrono::steady_clock::time_point()> fn() {
    return [this] { return t; };
  }
};

struct FakeStream {
  std::vector<uint8_t> written;
  bool fin = false;
  size_t capacity = 1 << 20;
  size_t consumed = 0;
  std::optional<uint32_t> reset, stop;
};

class FakeSession final : public wt::Session {
 public:
  void set_handler(wt::SessionHandler* h) override { handler = h; }
  const wt::SessionInfo& info() const override { return info_; }
  const wt::ConnectResponse& response() const override { return response_; }
  std::optional<wt::StreamId> open_bidi_stream() override {
    if (closed || open_local >= max_local) return std::nullopt;
    ++open_local;
    const wt::StreamId id = next_bidi;
    next_bidi += 4;
    streams[id];
    return id;
  }
  std::optional<wt::StreamId> open_uni_stream() override { return std::nullopt; }
  size_t write(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    if (closed) return 0;
    auto& s = streams[id];
    if (s.fin || s.reset) return 0;
    const size_t n = std::min(s.capacity, data.size());
    s.written.insert(s.written.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    s.capacity -= n;
    if (n == data.size() && fin) s.fin = true;
    return n;
  }
  size_t send_capacity(wt::StreamId id) const override {
    auto it = streams.find(id);
    return it == streams.end() || it->second.fin ? 0 : it->second.capacity;
  }
  void consume(wt::StreamId id, size_t n) override { streams[id].consumed += n; }
  void reset_stream(wt::StreamId id, uint32_t code) override { streams[id].reset = code; }
  void stop_sending(wt::StreamId id, uint32_t code) override { streams[id].stop = code; }
  size_t max_datagram_size() const override { return max_datagram; }
  bool send_datagram(std::span<const uint8_t> d) override {
    if (closed || d.size() > max_datagram || datagrams.size() >= datagram_room) return false;
    datagrams.emplace_back(d.begin(), d.end());
    return true;
  }
  // Writes are recorded at once: nothing is ever in transit.
  bool delivered() const override { return true; }
  void close(uint32_t code, std::string_view reason) override {
    if (closed) return;
    closed = true;
    close_code = code;
    close_reason = std::string(reason);
    if (auto* h = std::exchange(handler, nullptr)) h->on_closed(code, reason);
  }
  void drain() override { ++drains; }
  int drains = 0;  // DRAIN_WEBTRANSPORT_SESSION sent

  // The peer (agent) side.
  void peer_closes(uint32_t code, std::string_view reason) {
    closed = true;
    if (auto* h = std::exchange(handler, nullptr)) h->on_closed(code, reason);
  }

  wt::SessionHandler* handler = nullptr;
  wt::SessionInfo info_;
  wt::ConnectResponse response_{200, {}};
  std::map<wt::StreamId, FakeStream> streams;
  wt::StreamId next_bidi = 1;  // server-initiated bidi ids
  size_t open_local = 0, max_local = 100;
  size_t max_datagram = 0;                      // 0: datagrams unavailable
  size_t datagram_room = 1000;                  // datagrams sent before send_datagram reports no room
  std::vector<std::vector<uint8_t>> datagrams;  // sent
  bool closed = false;
  uint32_t close_code = 0;
  std::string close_reason;
};

// Scripted routes; streams recorded by id.
class FakeDirectory final : public TunnelDirectory {
 public:
  struct Stream {
    RequestStreamEvents* events = nullptr;
    std::vector<uint8_t> written;
    bool fin = false;
    size_t capacity = 1 << 20;
    size_t consumed = 0;
    std::optional<uint32_t> cancelled;
    bool released = false;
  };

  uint64_t route(std::string_view host, RouteEvents* events) override {
    auto it = routes.find(std::string(host));
    events->on_route(it == routes.end() ? RouteLookup{} : it->second);
    return 0;
  }
  uint64_t route_of(std::string_view type, std::string_view host, RouteEvents* events) override {
    if (type == "http" || all_types) return route(host, events);
    events->on_route(RouteLookup{});
    return 0;
  }
  void cancel_route(uint64_t /*ticket*/) override {}
  VisitorGate* visitor_gate(const RouteLookup& r) override {
    return r.kind == RouteLookup::Kind::kFound ? gate.get() : nullptr;
  }
  OpenStatus open_request(const RouteLookup& r, std::string_view client, RequestStreamEvents* events,
                          StreamRef* out) override {
    ++open_calls;
    last_client = std::string(client);
    if (client_limited > 0) {
      --client_limited;
      return OpenStatus::kClientLimit;
    }
    if (busy > 0) {
      --busy;
      return OpenStatus::kBusy;
    }
    if (gone) return OpenStatus::kGone;
    const wt::StreamId id = next_id;
    next_id += 4;
    streams[id].events = events;
    streams[id].capacity = capacity;
    *out = StreamRef{r.session, id, request_trailers};
    last = id;
    return OpenStatus::kOpened;
  }
  size_t write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) override {
    auto& s = streams[ref.id];
    if (s.cancelled || s.fin) return 0;
    const size_t n = std::min(s.capacity, data.size());
    s.written.insert(s.written.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(n));
    s.capacity -= n;
    if (n == data.size() && fin) s.fin = true;
    return n;
  }
  size_t send_capacity(const StreamRef& ref) override {
    auto& s = streams[ref.id];
    return s.fin || s.cancelled ? 0 : s.capacity;
  }
  void consume(const StreamRef& ref, size_t n) override { streams[ref.id].consumed += n; }
  void cancel(const StreamRef& ref, uint32_t code) override {
    if (!streams[ref.id].cancelled) streams[ref.id].cancelled = code;
  }
  void release(const StreamRef& ref) override { streams[ref.id].released = true; }
  // Relays: ids counted from 1 (as a session's own block 0), at most max_relays.
  uint64_t add_relay(const RouteLookup& r, WtRelayPeer* peer) override {
    uint64_t id = 1;
    while (relays.count(id) != 0) ++id;
    return add_relay_as(r, id, peer) ? id : 0;
  }
  bool add_relay_as(const RouteLookup& /*r*/, uint64_t id, WtRelayPeer* peer) override {
    if (gone || relays.size() >= max_relays) return false;
    return relays.emplace(id, peer).second;
  }
  void remove_relay(const RouteLookup& /*r*/, uint64_t id) override { relays.erase(id); }
  bool send_relay_datagram(const RouteLookup& /*r*/, uint64_t id, std::span<const uint8_t> p) override {
    if (gone || relays.count(id) == 0) return false;
    relay_datagrams.emplace_back(id, std::string(p.begin(), p.end()));
    return true;
  }
  // The agent opens a relayed stream for relay `id`: held like a request stream. Its ref, or an
  // invalid one when the relay refused it.
  StreamRef agent_stream(uint64_t id, bool uni) {
    const wt::StreamId sid = next_id;
    next_id += 4;
    RequestStreamEvents* events = relays.at(id)->on_agent_stream(StreamRef{1, sid}, uni);
    if (events == nullptr) return StreamRef{};
    streams[sid].events = events;
    return StreamRef{1, sid};
  }

  void add_route(const std::string& host, uint32_t tunnel_id = 7) {
    routes[host] = RouteLookup{RouteLookup::Kind::kFound, 1, tunnel_id, host};
  }

  std::map<std::string, RouteLookup> routes;
  bool all_types = false;             // routes answers route_of() of every type, not only "http"
  std::shared_ptr<VisitorGate> gate;  // every found route's visitor auth (null: none)
  std::map<wt::StreamId, Stream> streams;
  int busy = 0;
  int client_limited = 0;
  std::string last_client;
  bool gone = false;
  bool request_trailers = false;  // the session uses `request-trailers` (StreamRef::request_trailers)
  size_t capacity = 1 << 20;
  int open_calls = 0;
  std::map<uint64_t, WtRelayPeer*> relays;
  size_t max_relays = 64;
  std::vector<std::pair<uint64_t, std::string>> relay_datagrams;
  wt::StreamId next_id = 1;
  wt::StreamId last = -1;
};

using wtmesh::test::response_head;  // ../../support/response_head.h

// The agent of the fuzzers: answers each request whose body is complete (FIN) with 200 "ok", once.
inline void answer_complete_requests(FakeDirectory& dir, std::vector<wt::StreamId>& answered) {
  for (auto& [id, s] : dir.streams) {
    if (!s.fin || s.cancelled || s.released || s.events == nullptr) continue;
    if (std::find(answered.begin(), answered.end(), id) != answered.end()) continue;
    answered.push_back(id);
    tunnel::ResponseHead h;
    h.status = 200;
    h.content_length = 2;
    auto b = tunnel::encode_response_head(h);
    b.push_back('o');
    b.push_back('k');
    s.events->on_response_data(b, true);
  }
}

// The fuzzers' agent for upgrades: answers each request head that asks for `upgrade: websocket` with a
// 101 (the right Sec-WebSocket-Accept for its key unless `bad_accept`), then echoes the bytes written
// after the head, and ends its own direction once the request's FIN came.
struct UpgradeEcho {
  size_t head_len = 0;  // of the request stream, once answered
  size_t echoed = 0;
  bool ended = false;
};
inline void answer_upgrades(FakeDirectory& dir, std::map<wt::StreamId, UpgradeEcho>& state, bool bad_accept) {
  for (auto& [id, s] : dir.streams) {
    if (s.cancelled || s.released || s.events == nullptr) continue;
    auto it = state.find(id);
    if (it == state.end()) {
      tunnel::HeadReader<tunnel::RequestHead> reader;
      tunnel::RequestHead head;
      if (reader.feed(s.written, head) != tunnel::WireError::kNone) continue;
      std::string upgrade, key;
      for (const auto& [n, v] : head.headers) {
        if (n == "upgrade") upgrade = v;
        if (n == "sec-websocket-key") key = v;
      }
      if (upgrade != "websocket") continue;
      it = state.emplace(id, UpgradeEcho{s.written.size() - reader.take_body().size(), 0, false}).first;
      tunnel::ResponseHead h;
      h.status = 101;
      h.has_body = true;
      h.headers = {{"upgrade", "websocket"},
                   {"sec-websocket-accept",
                    bad_accept ? "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" : tunnel::websocket_accept(key)}};
      s.events->on_response_data(tunnel::encode_response_head(h), false);
      continue;  // echoing starts on the next call (the answer may have ended the stream)
    }
    auto& e = it->second;
    if (e.ended) continue;
    const size_t from = e.head_len + e.echoed;
    if (from < s.written.size() || s.fin) {
      const std::vector<uint8_t> echo(s.written.begin() + static_cast<ptrdiff_t>(from), s.written.end());
      e.echoed += echo.size();
      e.ended = s.fin;
      s.events->on_response_data(echo, s.fin);
    }
  }
}

inline std::vector<uint8_t> bytes(std::string_view s) { return std::vector<uint8_t>(s.begin(), s.end()); }
inline std::string str(std::span<const uint8_t> b) { return std::string(b.begin(), b.end()); }

// Decodes what the edge wrote at the start of a request stream: kind, head, and the body after it.
inline bool decode_request_stream(const std::vector<uint8_t>& w, tunnel::RequestHead& head,
                                  std::string* body) {
  tunnel::HeadReader<tunnel::RequestHead> r;  // reads the kind varint too
  if (r.feed(w, head) != tunnel::WireError::kNone) return false;
  auto rest = r.take_body();
  *body = std::string(rest.begin(), rest.end());
  return true;
}

inline std::string header_value(const tunnel::HeaderPairs& h, std::string_view name) {
  for (const auto& [n, v] : h) {
    if (n == name) return v;
  }
  return "<none>";
}

}  // namespace wtmesh::edge::test
