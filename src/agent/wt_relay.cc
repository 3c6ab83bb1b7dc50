#include "agent/wt_relay.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>
#include <functional>

#include "agent/wt_client.h"
#include "tunnel/relay_pipe.h"
#include "wt/capsule.h"

namespace wtmesh::agent {

namespace asio = boost::asio;

namespace {
constexpr size_t kMaxHeld = 16 << 20;  // beyond any sender's credit (it never should)
}  // namespace

// One relayed session: the tunnel's session stream on one side, an upstream WebTransport session on
// the other.
class WtRelaySession final : public wt::SessionHandler {
 public:
  WtRelaySession(WtRelayHost& host, wt::StreamId session_stream, tunnel::WtSessionOpen open)
      : host_(host), tunnel_(host.tunnel_), sstream_(session_stream), open_(std::move(open)) {}

  ~WtRelaySession() override {
    if (up_ != nullptr && !up_closed_) up_->set_handler(nullptr);
    if (client_) client_->close("relay ended");  // one connection per relayed session
  }

  void start(const H3UpstreamTarget* upstream) {
    if (upstream == nullptr) {
      return refuse(501, "the tunnel's upstream does not serve WebTransport (start it with --upstream h3)");
    }
    client_ = std::make_unique<WtClient>(host_.io_, upstream->tls);
    EdgeUrl url{upstream->tls_name, upstream->endpoint.port(), ""};
    std::string error;
    if (!client_->dial(url, &error, &upstream->endpoint))
      return refuse(502, "upstream unreachable: " + error);
    wt::HeaderPairs extra;
    for (const auto& [name, value] : open_.request.headers) {
      if (name == "origin" || name == "wt-available-protocols" || name == "user-agent" ||
          name.starts_with("x-")) {
        extra.emplace_back(name, value);
      }
    }
    up_ = client_->open_session(open_.request.target, extra, this, &error);
    if (up_ == nullptr) return refuse(502, "upstream session: " + error);
    spdlog::info("wt-relay {}: {} -> upstream {}:{}{}", open_.relay_id, open_.request.authority,
                 upstream->endpoint.address().to_string(), upstream->endpoint.port(), open_.request.target);
  }

  // --- tunnel side ---
  void on_session_stream(std::span<const uint8_t> data, bool fin) {
    tunnel_.consume(sstream_, data.size());
    std::vector<wt::Capsule> out;
    const wt::CapsuleError e = capsules_.feed(data, out);
    for (const auto& c : out) {
      if (const auto* close = std::get_if<wt::CloseSessionCapsule>(&c))
        return close_upstream(close->code, close->message);
      if (std::holds_alternative<wt::DrainSessionCapsule>(c) && up_ != nullptr && !up_closed_) up_->drain();
    }
    if (e != wt::CapsuleError::kNone)
      return close_upstream(tunnel::kStreamProtocolError, "bad capsule from the edge");
    if (fin) close_upstream(0, "");
  }

  void on_tunnel_stream(wt::StreamId id, bool uni, std::span<const uint8_t> rest, bool fin) {
    if (links_.size() >= tunnel::kMaxRelayedStreams || done_) {
      tunnel_.consume(id, rest.size());
      tunnel_.stop_sending(id, tunnel::kStreamCancelled);
      tunnel_.reset_stream(id, tunnel::kStreamCancelled);
      return;
    }
    spdlog::debug("wt-relay {}: tunnel stream {} arrived ({}, {} bytes{})", open_.relay_id, id,
                  uni ? "uni" : "bidi", rest.size(), fin ? ", FIN" : "");
    Link& l = links_[id];
    l.tun = id;
    l.to_up = true;
    l.from_up = !uni;
    host_.bind(id, open_.relay_id);
    if (uni) tunnel_.write(id, {}, true);  // our direction carries nothing
    on_tunnel_data(id, rest, fin);
    open_upstream_streams();
  }

  void on_tunnel_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
    auto it = links_.find(id);
    if (it == links_.end()) return tunnel_.consume(id, data.size());
    Link& l = it->second;
    if (!l.to_up) {  // the edge's direction of an upstream uni stream: only its FIN
      tunnel_.consume(id, data.size());
      return;
    }
    const bool ok =
        l.a.push(data, fin, kMaxHeld, writer_up(l), [this, id](size_t n) { tunnel_.consume(id, n); });
    if (!ok) return abort(l, tunnel::kStreamProtocolError, true, true);
    maybe_finish(id);
  }

  void on_tunnel_reset(wt::StreamId id, std::optional<uint32_t> code) {
    if (auto it = links_.find(id); it != links_.end()) abort(it->second, code.value_or(0), false, true);
  }
  void on_tunnel_stop(wt::StreamId id, std::optional<uint32_t> code) {
    if (auto it = links_.find(id); it != links_.end()) abort(it->second, code.value_or(0), false, true);
  }
  void on_tunnel_writable(wt::StreamId id) {
    spdlog::debug("wt-relay {}: tunnel stream {} writable", open_.relay_id, id);
    if (id == sstream_) return flush_session_stream();
    if (auto it = links_.find(id); it != links_.end()) pump_down(it->second);
  }
  // The transport forgot a tunnel stream: both of its directions ended there. Only the pipe that
  // writes to it stops; what it delivered before its FIN still goes to the upstream.
  void on_tunnel_closed_stream(wt::StreamId id) {
    if (id == sstream_) {
      sstream_gone_ = true;
      close_upstream(0, "");
      check_done();
      return;
    }
    auto it = links_.find(id);
    if (it == links_.end()) return;
    Link& l = it->second;
    const size_t dropped = l.b.abandon();
    if (l.up >= 0 && up_ != nullptr) up_->consume(l.up, dropped);
    if (l.to_up && !l.a.finished() && !l.a.source_ended())
      return abort(l, tunnel::kStreamCancelled, false, true);
    maybe_finish(id);
  }
  void on_tunnel_datagram(std::span<const uint8_t> payload) {
    if (up_ == nullptr || !ready_ || up_closed_ || payload.size() > up_->max_datagram_size() ||
        !up_->send_datagram(payload)) {
      ++dropped_;
      ++host_.datagrams_dropped_;
    }
  }
  // The tunnel session is gone (and may be destroyed before this object): detach from the upstream
  // session first so none of its callbacks reach us, then close it.
  void on_tunnel_gone() {
    sstream_gone_ = true;
    done_ = true;
    links_.clear();
    up_ids_.clear();
    if (up_ != nullptr && !up_closed_) {
      up_->set_handler(nullptr);
      up_->close(0, "tunnel closed");
    }
    up_closed_ = true;
    up_ = nullptr;
  }
  bool done() const { return done_; }

  // --- upstream side (wt::SessionHandler) ---
  void on_attached(wt::Session& s) override { up_ = &s; }
  void on_ready() override {
    ready_ = true;
    tunnel::ResponseHead head;
    head.status = up_->response().status;
    head.has_body = true;
    for (const auto& [n, v] : up_->response().headers) {
      if (head.headers.size() < tunnel::kMaxHeaderCount) head.headers.emplace_back(n, v);
    }
    answered_ = true;
    const auto bytes = tunnel::encode_response_head(head);
    session_out_.insert(session_out_.end(), bytes.begin(), bytes.end());
    flush_session_stream();
    open_upstream_streams();
  }
  void on_refused(const wt::ConnectResponse& response) override {
    refuse(response.status, "the upstream answered " + std::to_string(response.status));
  }
  void on_incoming_stream(wt::StreamId id, bool bidi) override {
    const auto tid = links_.size() < tunnel::kMaxRelayedStreams ? tunnel_.open_bidi_stream() : std::nullopt;
    if (!tid) {
      spdlog::warn("wt-relay {}: no tunnel stream free for upstream stream {}: refused", open_.relay_id, id);
      up_->stop_sending(id, 0);
      if (bidi) up_->reset_stream(id, 0);
      return;
    }
    Link& l = links_[*tid];
    l.tun = *tid;
    l.up = id;
    l.to_up = bidi;
    l.from_up = true;
    l.b = tunnel::RelayPipe(tunnel::encode_wt_stream_open({open_.relay_id, !bidi}));
    up_ids_[id] = *tid;
    host_.bind(*tid, open_.relay_id);
    pump_down(l);
  }
  void on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) override {
    Link* l = by_up(id);
    if (l == nullptr) return up_->consume(id, data.size());
    const wt::StreamId tid = l->tun;
    const bool ok =
        l->b.push(data, fin, kMaxHeld, writer_down(*l), [this, id](size_t n) { up_->consume(id, n); });
    if (!ok) return abort(*l, tunnel::kStreamProtocolError, true, true);
    maybe_finish(tid);
  }
  void on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) override {
    if (Link* l = by_up(id)) abort(*l, code.value_or(0), true, false);
  }
  void on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) override {
    if (Link* l = by_up(id)) abort(*l, code.value_or(0), true, false);
  }
  void on_stream_writable(wt::StreamId id) override {
    spdlog::debug("wt-relay {}: upstream stream {} writable", open_.relay_id, id);
    if (Link* l = by_up(id)) pump_up(*l);
  }
  // The transport forgot an upstream stream: as on_tunnel_closed_stream, the other way round.
  void on_stream_closed(wt::StreamId id) override {
    Link* l = by_up(id);
    if (l == nullptr) return;
    const wt::StreamId tid = l->tun;
    tunnel_.consume(tid, l->a.abandon());
    if (l->from_up && !l->b.finished() && !l->b.source_ended())
      return abort(*l, tunnel::kStreamCancelled, true, false);
    maybe_finish(tid);
  }
  void on_datagram(std::span<const uint8_t> payload) override {
    const auto d = tunnel::encode_datagram(open_.relay_id, payload);
    if (d.size() > tunnel_.max_datagram_size() || !tunnel_.send_datagram(d)) {
      ++dropped_;
      ++host_.datagrams_dropped_;
    }
  }
  void on_streams_available() override { open_upstream_streams(); }
  void on_drain() override { send_capsule(wt::DrainSessionCapsule{}, false); }
  void on_closed(uint32_t code, std::string_view reason) override {
    if (up_closed_) return;
    up_closed_ = true;
    spdlog::info("wt-relay {}: upstream session closed, code {} \"{}\" ({} datagram(s) dropped)",
                 open_.relay_id, code, reason, dropped_);
    reset_links();
    if (!answered_) {
      refuse(502, "upstream session ended: " + std::string(reason));
    } else {
      send_capsule(wt::CloseSessionCapsule{code, std::string(reason)}, true);
    }
    up_ = nullptr;
    check_done();
  }

 private:
  struct Link {
    wt::StreamId tun = -1;
    wt::StreamId up = -1;  // -1 until the upstream stream is open
    bool to_up = true;     // bytes tunnel → upstream
    bool from_up = true;   // bytes upstream → tunnel
    tunnel::RelayPipe a;   // tunnel → upstream
    tunnel::RelayPipe b;   // upstream → tunnel
  };

  Link* by_up(wt::StreamId up) {
    auto it = up_ids_.find(up);
    if (it == up_ids_.end()) return nullptr;
    auto l = links_.find(it->second);
    return l == links_.end() ? nullptr : &l->second;
  }
  using Writer = std::function<size_t(std::span<const uint8_t>, bool)>;
  Writer writer_up(Link& l) {
    return [this, &l](std::span<const uint8_t> b, bool fin) -> size_t {
      const size_t n = (l.up < 0 || up_ == nullptr) ? 0 : up_->write(l.up, b, fin);
      if (n < b.size() && l.up >= 0) {
        spdlog::debug("wt-relay {}: upstream stream {} took {} of {} bytes (capacity {})", open_.relay_id,
                      l.up, n, b.size(), up_ ? up_->send_capacity(l.up) : 0);
      }
      return n;
    };
  }
  Writer writer_down(Link& l) {
    return [this, &l](std::span<const uint8_t> b, bool fin) {
      const size_t n = tunnel_.write(l.tun, b, fin);
      if (n < b.size()) {
        spdlog::debug("wt-relay {}: tunnel stream {} took {} of {} bytes", open_.relay_id, l.tun, n,
                      b.size());
      }
      return n;
    };
  }
  void pump_up(Link& l) {
    const wt::StreamId tid = l.tun;
    l.a.pump(writer_up(l), [this, tid](size_t n) { tunnel_.consume(tid, n); });
    maybe_finish(tid);
  }
  void pump_down(Link& l) {
    const wt::StreamId tid = l.tun;
    const wt::StreamId up = l.up;
    l.b.pump(writer_down(l), [this, up](size_t n) {
      if (up_ != nullptr) up_->consume(up, n);
    });
    maybe_finish(tid);
  }
  // Edge-opened streams wait for the upstream session (and its stream credit); their bytes wait
  // unconsumed, so the public client is held back meanwhile.
  void open_upstream_streams() {
    if (!ready_ || up_ == nullptr || up_closed_) return;
    for (auto& [tid, l] : links_) {
      if (l.up >= 0) continue;
      const auto id = l.from_up ? up_->open_bidi_stream() : up_->open_uni_stream();
      if (!id) {  // on_streams_available retries
        spdlog::warn("wt-relay {}: no upstream stream free now for tunnel stream {}; waiting", open_.relay_id,
                     tid);
        return;
      }
      l.up = *id;
      up_ids_[*id] = tid;
      spdlog::debug("wt-relay {}: tunnel stream {} -> upstream stream {}", open_.relay_id, tid, *id);
      pump_up(l);
      if (links_.count(tid) == 0) return;  // finished inside: the iterator is gone
    }
  }
  void abort(Link& l, uint32_t code, bool tell_tunnel, bool tell_up) {
    const wt::StreamId tid = l.tun;
    if (tell_tunnel) {
      tunnel_.reset_stream(tid, code);
      tunnel_.stop_sending(tid, code);
    }
    if (tell_up && l.up >= 0 && up_ != nullptr) {
      up_->reset_stream(l.up, code);
      up_->stop_sending(l.up, code);
    }
    tunnel_.consume(tid, l.a.abandon());
    if (l.up >= 0 && up_ != nullptr) up_->consume(l.up, l.b.abandon());
    l.b.abandon();
    forget(tid);
  }
  void maybe_finish(wt::StreamId tid) {
    auto it = links_.find(tid);
    if (it == links_.end()) return;
    const Link& l = it->second;
    if ((!l.to_up || l.a.finished()) && (!l.from_up || l.b.finished())) forget(tid);
  }
  void forget(wt::StreamId tid) {
    auto it = links_.find(tid);
    if (it == links_.end()) return;
    if (it->second.up >= 0) up_ids_.erase(it->second.up);
    links_.erase(it);
    host_.unbind(tid);
  }
  void reset_links() {
    while (!links_.empty()) abort(links_.begin()->second, tunnel::kStreamCancelled, true, true);
  }
  void refuse(int status, const std::string& why) {
    if (answered_) return;
    answered_ = true;
    spdlog::warn("wt-relay {}: refused with {}: {}", open_.relay_id, status, why);
    tunnel::ResponseHead head;
    head.status = status;
    head.headers.emplace_back("wtmesh-error", why.substr(0, 512));
    const auto bytes = tunnel::encode_response_head(head);
    session_out_.insert(session_out_.end(), bytes.begin(), bytes.end());
    session_fin_ = true;
    reset_links();
    flush_session_stream();
    if (up_ != nullptr && !up_closed_) up_->close(0, "");
    check_done();
  }
  void close_upstream(uint32_t code, std::string_view reason) {
    if (up_ != nullptr && !up_closed_) {
      up_->close(code, reason);  // on_closed follows: it answers on the session stream
      return;
    }
    if (!answered_) refuse(502, "the public session ended first");
    check_done();
  }
  void send_capsule(const wt::Capsule& c, bool fin) {
    if (session_fin_) return;
    wt::serialize_capsule(c, session_out_);
    session_fin_ = fin;
    flush_session_stream();
  }
  void flush_session_stream() {
    if (sstream_gone_ || sstream_done_ || (session_out_.empty() && !session_fin_)) return;
    const size_t n = tunnel_.write(sstream_, session_out_, session_fin_);
    session_out_.erase(session_out_.begin(), session_out_.begin() + static_cast<std::ptrdiff_t>(n));
    if (session_out_.empty() && session_fin_) sstream_done_ = true;
    check_done();
  }
  void check_done() {
    if (done_ || !(sstream_done_ || sstream_gone_) || (up_ != nullptr && !up_closed_)) return;
    done_ = true;
    host_.finished(open_.relay_id);
  }

  WtRelayHost& host_;
  wt::Session& tunnel_;
  wt::StreamId sstream_;
  tunnel::WtSessionOpen open_;
  std::unique_ptr<WtClient> client_;
  wt::Session* up_ = nullptr;
  bool ready_ = false, answered_ = false, up_closed_ = false;
  bool sstream_done_ = false, sstream_gone_ = false, session_fin_ = false, done_ = false;
  std::vector<uint8_t> session_out_;
  wt::CapsuleParser capsules_;
  std::map<wt::StreamId, Link> links_;           // by tunnel stream id
  std::map<wt::StreamId, wt::StreamId> up_ids_;  // upstream stream id → tunnel stream id
  uint64_t dropped_ = 0;
};

WtRelayHost::WtRelayHost(asio::io_context& io, wt::Session& tunnel,
                         std::function<const H3UpstreamTarget*(uint32_t)> upstream_for)
    : io_(io), tunnel_(tunnel), upstream_for_(std::move(upstream_for)) {}

WtRelayHost::~WtRelayHost() = default;

void WtRelayHost::refuse(wt::StreamId id) {
  tunnel_.reset_stream(id, tunnel::kStreamProtocolError);
  tunnel_.stop_sending(id, tunnel::kStreamProtocolError);
}

WtRelaySession* WtRelayHost::owner(wt::StreamId id) {
  auto it = stream_owner_.find(id);
  if (it == stream_owner_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : s->second.get();
}

void WtRelayHost::on_new_stream(wt::StreamId id, tunnel::StreamKind kind, std::span<const uint8_t> rest,
                                bool fin) {
  if (kind == tunnel::StreamKind::kWtSession) {
    session_heads_.emplace(id, tunnel::WtSessionOpenReader());
  } else {
    stream_heads_.emplace(id, tunnel::WtStreamOpenReader());
  }
  if (!rest.empty() || fin) on_stream_data(id, rest, fin);
}

bool WtRelayHost::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  if (auto h = session_heads_.find(id); h != session_heads_.end()) {
    tunnel::WtSessionOpen open;
    const tunnel::WireError e = h->second.feed(data, open);
    if (e == tunnel::WireError::kNeedMore) {
      tunnel_.consume(id, data.size());
      if (fin) {
        session_heads_.erase(h);
        refuse(id);
      }
      return true;
    }
    std::vector<uint8_t> rest = h->second.take_rest();
    session_heads_.erase(h);
    tunnel_.consume(id, data.size() - rest.size());
    if (e != tunnel::WireError::kNone || sessions_.count(open.relay_id) != 0 ||
        sessions_.size() >= tunnel::kMaxRelayedSessions) {
      tunnel_.consume(id, rest.size());
      refuse(id);
      return true;
    }
    const uint64_t relay_id = open.relay_id;
    const uint32_t tunnel_id = open.request.tunnel_id;
    auto session = std::make_unique<WtRelaySession>(*this, id, std::move(open));
    WtRelaySession* s = session.get();
    sessions_.emplace(relay_id, std::move(session));
    session_streams_[id] = relay_id;
    s->start(upstream_for_(tunnel_id));
    if (!rest.empty() || fin) {
      if (WtRelaySession* again = session_of(id)) again->on_session_stream(rest, fin);
    }
    release_early(relay_id);
    return true;
  }
  if (auto h = stream_heads_.find(id); h != stream_heads_.end()) {
    tunnel::WtStreamOpen open;
    size_t used = 0;
    const tunnel::WireError e = h->second.feed(data, open, &used);
    tunnel_.consume(id, used);
    if (e == tunnel::WireError::kNeedMore) {
      if (fin) {
        stream_heads_.erase(h);
        refuse(id);
      }
      return true;
    }
    stream_heads_.erase(h);
    const auto rest = data.subspan(used);
    auto s = sessions_.find(open.relay_id);
    if (e == tunnel::WireError::kNone && s == sessions_.end() &&
        hold_early(id, open.relay_id, open.uni, rest, fin))
      return true;
    if (e != tunnel::WireError::kNone || s == sessions_.end() || s->second->done()) {
      tunnel_.consume(id, rest.size());
      refuse(id);
      return true;
    }
    s->second->on_tunnel_stream(id, open.uni, rest, fin);
    return true;
  }
  if (auto it = early_.find(id); it != early_.end()) {
    EarlyStream& early = it->second;
    if (early.fin || early.bytes.size() + data.size() > kMaxEarlyBytes) {
      const EarlyStream gone = std::move(early);
      early_.erase(it);
      tunnel_.consume(id, data.size());
      refuse_early(id, gone);
      return true;
    }
    early.bytes.insert(early.bytes.end(), data.begin(), data.end());
    early.fin = fin;
    return true;
  }
  if (session_streams_.count(id) != 0) {
    if (WtRelaySession* rs = session_of(id)) {
      rs->on_session_stream(data, fin);
    } else {
      tunnel_.consume(id, data.size());
    }
    return true;
  }
  if (stream_owner_.count(id) == 0) return false;
  if (WtRelaySession* rs = owner(id)) {
    rs->on_tunnel_data(id, data, fin);
  } else {
    tunnel_.consume(id, data.size());
  }
  return true;
}

WtRelaySession* WtRelayHost::session_of(wt::StreamId id) {
  auto it = session_streams_.find(id);
  if (it == session_streams_.end()) return nullptr;
  auto s = sessions_.find(it->second);
  return s == sessions_.end() ? nullptr : s->second.get();
}

bool WtRelayHost::on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) {
  if (session_heads_.erase(id) + stream_heads_.erase(id) + early_.erase(id) != 0) return true;
  if (WtRelaySession* rs = session_of(id)) {
    rs->on_tunnel_closed_stream(id);
    return true;
  }
  if (WtRelaySession* rs = owner(id)) {
    rs->on_tunnel_reset(id, code);
    return true;
  }
  return session_streams_.count(id) != 0 || stream_owner_.count(id) != 0;
}

bool WtRelayHost::on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) {
  if (WtRelaySession* rs = owner(id)) {
    rs->on_tunnel_stop(id, code);
    return true;
  }
  return session_streams_.count(id) != 0 || session_heads_.count(id) != 0 || stream_heads_.count(id) != 0 ||
         early_.count(id) != 0;
}

bool WtRelayHost::on_stream_writable(wt::StreamId id) {
  WtRelaySession* rs = session_of(id);
  if (rs == nullptr) rs = owner(id);
  if (rs == nullptr) return false;
  rs->on_tunnel_writable(id);
  return true;
}

bool WtRelayHost::on_stream_closed(wt::StreamId id) {
  bool ours = session_heads_.erase(id) + stream_heads_.erase(id) + early_.erase(id) != 0;
  if (WtRelaySession* rs = session_of(id)) {
    rs->on_tunnel_closed_stream(id);
    ours = true;
  } else if (WtRelaySession* rs2 = owner(id)) {
    rs2->on_tunnel_closed_stream(id);
    ours = true;
  }
  ours = ours || session_streams_.count(id) != 0 || stream_owner_.count(id) != 0;
  session_streams_.erase(id);
  return ours;
}

void WtRelayHost::on_datagram(std::span<const uint8_t> datagram) {
  const auto d = tunnel::decode_datagram(datagram);
  if (!d) {
    ++datagrams_dropped_;
    return;
  }
  if (auto s = sessions_.find(d->flow_id); s != sessions_.end()) {
    s->second->on_tunnel_datagram(d->payload);
  } else {
    ++datagrams_dropped_;  // a flow no relayed session has (§2.1)
  }
}

void WtRelayHost::on_streams_available() {
  for (auto& [id, s] : sessions_) s->on_streams_available();
}

void WtRelayHost::on_tunnel_closed() {
  session_heads_.clear();
  stream_heads_.clear();
  early_.clear();
  early_timer_.cancel();
  early_timer_armed_ = false;
  stream_owner_.clear();
  session_streams_.clear();
  auto sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& [id, s] : sessions) s->on_tunnel_gone();
  // Their upstream connections close with them; destroyed outside any of their callbacks.
  asio::post(io_, [keep = std::make_shared<decltype(sessions)>(std::move(sessions))] {});
}

bool WtRelayHost::hold_early(wt::StreamId id, uint64_t relay_id, bool uni, std::span<const uint8_t> rest,
                             bool fin) {
  if (early_.size() >= kMaxEarlyStreams || rest.size() > kMaxEarlyBytes) return false;
  EarlyStream& e = early_[id];
  e.relay_id = relay_id;
  e.uni = uni;
  e.bytes.assign(rest.begin(), rest.end());
  e.fin = fin;
  e.since = std::chrono::steady_clock::now();
  arm_early_timer(kEarlyWait);
  return true;
}

void WtRelayHost::arm_early_timer(std::chrono::milliseconds after) {
  if (early_timer_armed_) return;
  early_timer_armed_ = true;
  early_timer_.expires_after(after);
  early_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](const boost::system::error_code& ec) {
    if (ec || alive.expired()) return;
    early_timer_armed_ = false;
    expire_early();
  });
}

template <typename Pred>
std::vector<std::pair<wt::StreamId, WtRelayHost::EarlyStream>> WtRelayHost::take_early(Pred pred) {
  std::vector<std::pair<wt::StreamId, EarlyStream>> taken;
  for (auto it = early_.begin(); it != early_.end();) {
    if (pred(it->second)) {
      taken.emplace_back(it->first, std::move(it->second));
      it = early_.erase(it);
    } else {
      ++it;
    }
  }
  return taken;
}

void WtRelayHost::release_early(uint64_t relay_id) {
  for (auto& [id, e] : take_early([&](const EarlyStream& x) { return x.relay_id == relay_id; })) {
    auto s = sessions_.find(relay_id);  // looked up each time: a stream may end the session
    if (s == sessions_.end() || s->second->done()) {
      refuse_early(id, e);
    } else {
      s->second->on_tunnel_stream(id, e.uni, e.bytes, e.fin);
    }
  }
}

void WtRelayHost::refuse_early(wt::StreamId id, const EarlyStream& e) {
  tunnel_.consume(id, e.bytes.size());
  refuse(id);
}

void WtRelayHost::expire_early() {
  const auto now = std::chrono::steady_clock::now();
  for (auto& [id, e] : take_early([&](const EarlyStream& x) { return now - x.since >= kEarlyWait; }))
    refuse_early(id, e);
  if (!early_.empty()) arm_early_timer(kEarlyWait / 4);
}

void WtRelayHost::finished(uint64_t relay_id) {
  for (auto it = session_streams_.begin(); it != session_streams_.end();) {
    it = it->second == relay_id ? session_streams_.erase(it) : std::next(it);
  }
  auto s = sessions_.find(relay_id);
  if (s == sessions_.end()) return;
  std::shared_ptr<WtRelaySession> doomed(s->second.release());
  sessions_.erase(s);
  asio::post(io_, [doomed] {});
}

}  // namespace wtmesh::agent
