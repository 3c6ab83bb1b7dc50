#include "agent/edge_session.h"

#include <spdlog/spdlog.h>

#include <boost/asio/post.hpp>

namespace wtmesh::agent {

namespace asio = boost::asio;
using tunnel::kStreamProtocolError;

EdgeSession::EdgeSession(asio::io_context& io, std::vector<TunnelRoute> routes, ControlOptions control,
                         ExchangeLimits limits, Callbacks callbacks, tunnel::UdpFlowOptions udp)
    : io_(io),
      routes_(std::move(routes)),
      control_options_(control),
      control_(control, std::chrono::steady_clock::now()),
      limits_(limits),
      callbacks_(std::move(callbacks)),
      heartbeat_(io),
      telemetry_timer_(io),
      renew_timer_(io),
      udp_options_(udp) {}

EdgeSession::~EdgeSession() {
  heartbeat_.cancel();
  telemetry_timer_.cancel();
  renew_timer_.cancel();
  for (auto& [id, ex] : exchanges_) ex->on_session_gone();
}

const TunnelRoute* EdgeSession::route(uint32_t tunnel_id) const {
  for (const auto& r : routes_) {
    if (r.registration.id == tunnel_id) return &r;
  }
  return nullptr;
}

void EdgeSession::on_ready() {
  ready_ = true;
  // Feature `trailers` (docs/protocol.md §4.1): only when the edge echoed it.
  limits_.trailers = false;
  for (const auto& [name, value] : session_->response().headers) {
    if (name == tunnel::kFeaturesHeader && tunnel::has_feature(value, tunnel::kFeatureTrailers))
      limits_.trailers = true;
  }
  relays_ = std::make_unique<WtRelayHost>(io_, *session_, [this](uint32_t id) -> const H3UpstreamTarget* {
    const TunnelRoute* r = route(id);
    return r ? r->wt : nullptr;
  });
  udp_ = std::make_unique<UdpFlows>(
      io_, *session_,
      [this](uint32_t id) -> const UdpTarget* {
        const TunnelRoute* r = route(id);
        return r && r->udp ? &*r->udp : nullptr;
      },
      udp_options_);
  control_id_ = session_->open_bidi_stream();
  if (!control_id_) {
    close(tunnel::kCloseProtocolError, "cannot open the control stream");
    return;
  }
  // Silence is measured from now, not from when the session object was made.
  control_ = ControlChannel(control_options_, std::chrono::steady_clock::now());
  std::vector<TunnelRegistration> regs;
  for (const auto& r : routes_) regs.push_back(r.registration);
  control_.start(regs);
  flush_control();
  arm_heartbeat();
  if (control_options_.telemetry_interval.count() > 0) {
    send_telemetry();
    report_was_busy_ = busy();
    arm_telemetry();
  }
  arm_renewal(renewal_.every);
  if (callbacks_.on_ready) callbacks_.on_ready();
  check_idle();
}

void EdgeSession::arm_renewal(std::chrono::milliseconds delay) {
  if (closed_ || renewal_.every.count() <= 0 || !renewal_.mint) return;
  renew_timer_.expires_after(std::max(delay, std::chrono::milliseconds(0)));
  renew_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || closed_) return;
    send_renewal();
  });
}

void EdgeSession::send_renewal() {
  std::string token;
  try {
    token = renewal_.mint();
  } catch (const std::exception& e) {
    if (callbacks_.on_renewed)
      callbacks_.on_renewed(false, std::string("cannot mint a session token: ") + e.what());
    return;  // the session ends at its token's expiry; the next attempt reports the same
  }
  minted_at_ = std::chrono::steady_clock::now();
  control_.send_renew(std::move(token));
  flush_control();
}

void EdgeSession::on_renewed(const ControlEvent& ev) {
  if (ev.expires == 0) {
    if (callbacks_.on_renewed)
      callbacks_.on_renewed(false, "the edge refused to renew the session token: " + ev.message +
                                       "; the session ends when its token expires");
    return;
  }
  ++renewals_;
  const auto left = std::chrono::system_clock::time_point(std::chrono::seconds(ev.expires)) -
                    std::chrono::system_clock::now();
  if (callbacks_.on_renewed)
    callbacks_.on_renewed(
        true, "session token renewed (" + std::to_string(renewals_) + "), valid for " +
                  std::to_string(std::chrono::duration_cast<std::chrono::seconds>(left).count()) + " s more");
  const auto since =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - minted_at_);
  arm_renewal(renewal_.every - since);
}

tunnel::TelemetryReport EdgeSession::telemetry_report() const {
  tunnel::TelemetryReport r;
  const auto us = [](auto d) {
    return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
  };
  // QUIC's smoothed RTT; the heartbeat's PING/PONG round trip where the transport measures none.
  if (session_ != nullptr && session_->smoothed_rtt().count() > 0) {
    r.rtt_us = us(session_->smoothed_rtt());
  } else if (auto rtt = control_.heartbeat().rtt()) {
    r.rtt_us = us(*rtt);
  }
  r.bytes_sent = counted_ ? counted_->bytes_sent() : 0;
  r.bytes_received = bytes_received_;
  r.open_streams = exchanges_.size() + pending_heads() + (control_id_ ? 1 : 0);
  r.datagrams_dropped = telemetry_dropped_ + (relays_ ? relays_->datagrams_dropped() : 0);
  if (control_options_.started_at != SteadyTime{}) {
    r.uptime_s = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                           std::chrono::steady_clock::now() - control_options_.started_at)
                                           .count());
  }
  if (!control_options_.agent_version.empty()) r.version = control_options_.agent_version;
  return r;
}

void EdgeSession::send_telemetry() {
  if (closed_ || session_ == nullptr) return;
  report_at_ = std::chrono::steady_clock::now();
  const auto d = tunnel::encode_telemetry_datagram(telemetry_report(), session_->max_datagram_size());
  if (!d || !session_->send_datagram(*d)) ++telemetry_dropped_;  // the next report says so
}

void EdgeSession::arm_telemetry() {
  if (closed_) return;
  telemetry_timer_.expires_after(control_options_.telemetry_interval);
  telemetry_timer_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || closed_) return;
    // Every interval while anything is under way, or was since the last report (a request that
    // came and went between two ticks), and once more after; else every idle interval.
    const bool busy_now = busy();
    const auto now = std::chrono::steady_clock::now();
    if (busy_now || report_was_busy_ || busy_seen_ >= report_at_ ||
        now - report_at_ >= control_options_.telemetry_idle_interval) {
      send_telemetry();
      report_was_busy_ = busy_now;
    }
    arm_telemetry();
  });
}

bool EdgeSession::open_connect(const std::string& name, asio::ip::tcp::socket client) {
  std::optional<wt::StreamId> id;
  if (ready_ && !closed_ && session_) id = session_->open_bidi_stream();
  if (!id) {
    boost::system::error_code ec;
    client.set_option(asio::socket_base::linger(true, 0), ec);  // close() sends RST
    client.close(ec);
    return false;
  }
  auto refused = [this, alive = std::weak_ptr<int>(alive_), name](const tunnel::ConnectReply& reply) {
    if (!alive.expired() && callbacks_.on_connect_refused) callbacks_.on_connect_refused(name, reply);
  };
  auto done = [this, alive = std::weak_ptr<int>(alive_), id = *id](bool) {
    if (!alive.expired()) remove_later(id);
  };
  auto ex = std::make_shared<TcpStreamDriver>(*session_, *id, std::move(client), name, std::move(refused),
                                              std::move(done));
  exchanges_.emplace(*id, ex);
  note_busy();
  ex->start({}, false);
  return true;
}

std::optional<uint64_t> EdgeSession::open_udp_connect(const std::string& name, UdpConnectSink* sink) {
  std::optional<wt::StreamId> id;
  if (ready_ && !closed_ && session_) id = session_->open_bidi_stream();
  if (!id) return std::nullopt;
  const auto flow = tunnel::udp_flow_id(tunnel::FlowOpener::kAgent, udp_flows_opened_++);
  if (!flow) {
    session_->reset_stream(*id, tunnel::kStreamCancelled);
    return std::nullopt;
  }
  auto done = [this, alive = std::weak_ptr<int>(alive_), id = *id, flow = *flow] {
    if (alive.expired()) return;
    udp_connects_.erase(flow);
    remove_later(id);
  };
  auto st = std::make_shared<UdpConnectStream>(*session_, *id, name, *flow, sink, std::move(done));
  udp_connects_[*flow] = UdpConnectFlow{st, sink};
  exchanges_.emplace(*id, st);
  note_busy();
  st->start({}, false);
  return *flow;
}

void EdgeSession::end_udp_connect(uint64_t flow_id) {
  auto it = udp_connects_.find(flow_id);
  if (it == udp_connects_.end()) return;
  auto st = it->second.stream.lock();
  udp_connects_.erase(it);
  if (st) st->finish();
}

EdgeSession::UdpSend EdgeSession::send_udp_connect(uint64_t flow_id, std::span<const uint8_t> payload) {
  if (closed_ || session_ == nullptr || udp_connects_.count(flow_id) == 0) return UdpSend::kNotOpen;
  if (tunnel::udp_datagram_overhead(flow_id, 0) + payload.size() > session_->max_datagram_size())
    return UdpSend::kTooBig;
  return session_->send_datagram(tunnel::encode_udp_datagram(flow_id, 0, payload)) ? UdpSend::kSent
                                                                                   : UdpSend::kNoRoom;
}

void EdgeSession::register_again(uint32_t tunnel_id) {
  const TunnelRoute* r = route(tunnel_id);
  if (!r || closed_ || !control_id_) return;
  control_.send_register(r->registration);
  flush_control();
}

void EdgeSession::flush_control() {
  if (!session_ || !control_id_ || closed_) return;
  if (control_.failed()) return control_failed();
  const auto out = control_.pending_output();
  if (out.empty()) return;
  control_.output_written(session_->write(*control_id_, out, false));
}

void EdgeSession::control_failed() {
  close(control_.timed_out() ? tunnel::kCloseHeartbeatTimeout : tunnel::kCloseProtocolError,
        control_.error());
}

void EdgeSession::arm_heartbeat() {
  if (closed_) return;
  heartbeat_.expires_at(control_.next_deadline());
  heartbeat_.async_wait([this, alive = std::weak_ptr<int>(alive_)](boost::system::error_code ec) {
    if (ec || alive.expired() || closed_) return;
    if (!control_.on_tick(std::chrono::steady_clock::now())) return control_failed();
    flush_control();
    check_idle();
    arm_heartbeat();
  });
}

void EdgeSession::drain() {
  if (closed_ || !session_) return;
  session_->drain();
}

void EdgeSession::on_drain() {
  if (drain_received_ || closed_) return;
  drain_received_ = true;
  spdlog::debug("tunnel: the edge asks this session to drain");
  if (callbacks_.on_drain) callbacks_.on_drain();
}

void EdgeSession::close(uint32_t code, const std::string& reason) {
  if (closed_ || !session_) return;
  spdlog::debug("tunnel: closing session: code {} ({})", code, reason);
  // A normal shutdown finishes the control stream first: closing the session resets its streams, and
  // an edge that sees the control stream reset before the close capsule would log a protocol error.
  if (code == tunnel::kCloseNormal && control_id_) session_->write(*control_id_, {}, true);
  session_->close(code, reason);
}

void EdgeSession::on_incoming_stream(wt::StreamId id, bool bidi) {
  if (!bidi) {
    // v1 uses no unidirectional streams: refuse without ending the session.
    session_->stop_sending(id, kStreamProtocolError);
    return;
  }
  kinds_.emplace(id, tunnel::StreamKindReader());
  note_busy();
}

bool EdgeSession::busy() const {
  return !exchanges_.empty() || pending_heads() > 0 || (relays_ && relays_->session_count() > 0) ||
         (udp_ && udp_->flow_count() > 0) || !udp_connects_.empty();
}

void EdgeSession::note_busy() {
  busy_seen_ = std::chrono::steady_clock::now();
  if (busy_told_ || closed_) return;
  busy_told_ = true;
  if (callbacks_.on_busy) callbacks_.on_busy(true);
}

void EdgeSession::check_idle() {
  const auto now = std::chrono::steady_clock::now();
  if (busy()) busy_seen_ = now;
  if (!busy_told_ || closed_ || now - busy_seen_ < control_options_.idle_after) return;
  busy_told_ = false;
  if (callbacks_.on_busy) callbacks_.on_busy(false);
}

void EdgeSession::refuse_stream(wt::StreamId id, const std::string& why) {
  spdlog::warn("tunnel: refusing stream {}: {}", id, why);
  session_->reset_stream(id, kStreamProtocolError);
  session_->stop_sending(id, kStreamProtocolError);
}

void EdgeSession::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  if (closed_) return;
  bytes_received_ += data.size();
  if (control_id_ && id == *control_id_) {
    session_->consume(id, data.size());  // the reader holds at most one bounded frame
    std::vector<ControlEvent> events;
    const bool ok = control_.on_data(data, std::chrono::steady_clock::now(), events);
    for (const auto& ev : events) {
      if (ev.kind == ControlEvent::Kind::kRenewed) on_renewed(ev);
      if ((ev.kind == ControlEvent::Kind::kRegistered || ev.kind == ControlEvent::Kind::kRefused) &&
          callbacks_.on_control) {
        callbacks_.on_control(ev);
      }
    }
    if (!ok) return control_failed();
    if (fin) return close(tunnel::kCloseProtocolError, "the edge closed the control stream");
    flush_control();
    return;
  }
  if (auto ex = exchanges_.find(id); ex != exchanges_.end()) {
    auto keep = ex->second;  // the exchange may finish (and be scheduled for removal) inside
    keep->on_body(data, fin);
    return;
  }
  if (relays_ && relays_->on_stream_data(id, data, fin)) return;
  if (auto k = kinds_.find(id); k != kinds_.end()) {
    // Dispatch by stream kind (docs/protocol.md §2): the edge opens only request streams in v1.
    const size_t used = k->second.feed(data);
    session_->consume(id, used);
    data = data.subspan(used);
    const auto kind = k->second.kind();
    if (!kind) {
      if (fin) {
        kinds_.erase(k);
        refuse_stream(id, "request stream ended inside its kind");
      }
      return;
    }
    kinds_.erase(k);
    const auto accepted = tunnel::accept_stream_kind(*kind, tunnel::Peer::kAgent);
    if (accepted == tunnel::StreamKind::kTcpStream) {
      tcp_heads_.emplace(id, tunnel::TcpHeadReader());
      return on_tcp_head_data(id, data, fin);
    }
    if (relays_ &&
        (accepted == tunnel::StreamKind::kWtSession || accepted == tunnel::StreamKind::kWtStream)) {
      relays_->on_new_stream(id, *accepted, data, fin);
      return;
    }
    if (accepted != tunnel::StreamKind::kHttpRequest) {
      session_->consume(id, data.size());
      refuse_stream(id, "stream of unknown kind " + std::to_string(*kind));
      return;
    }
    heads_.emplace(id, tunnel::HeadReader<tunnel::RequestHead>(/*kind_read=*/true));
    if (data.empty() && !fin) return;
  }
  if (tcp_heads_.count(id) != 0) return on_tcp_head_data(id, data, fin);
  auto h = heads_.find(id);
  if (h == heads_.end()) {
    session_->consume(id, data.size());  // a refused or finished stream: credit and drop
    return;
  }
  tunnel::RequestHead head;
  const auto e = h->second.feed(data, head);
  if (e == tunnel::WireError::kNeedMore) {
    session_->consume(id, data.size());  // all head bytes, now copied into the reader
    if (fin) {
      heads_.erase(h);
      refuse_stream(id, "request stream ended inside its head");
    }
    return;
  }
  if (e != tunnel::WireError::kNone) {
    session_->consume(id, data.size());
    heads_.erase(h);
    refuse_stream(id, std::string("bad request head: ") + tunnel::to_string(e));
    return;
  }
  std::vector<uint8_t> body = h->second.take_body();
  heads_.erase(h);
  session_->consume(id, data.size() - body.size());  // the head's share of this chunk
  start_exchange(id, std::move(head), std::move(body), fin);
}

void EdgeSession::start_exchange(wt::StreamId id, tunnel::RequestHead head, std::vector<uint8_t> body,
                                 bool fin) {
  const TunnelRoute* r = route(head.tunnel_id);
  if (!r || !r->pool) {
    session_->consume(id, body.size());
    refuse_stream(id, "request for unknown tunnel id " + std::to_string(head.tunnel_id));
    return;
  }
  const uint32_t tunnel_id = head.tunnel_id;
  auto done = [this, alive = std::weak_ptr<int>(alive_), id, tunnel_id](const ExchangeResult& result) {
    if (alive.expired()) return;
    if (callbacks_.on_request) callbacks_.on_request(tunnel_id, result);
    remove_later(id);
  };
  std::shared_ptr<UpstreamDriver> ex;
  if (r->select) {
    ex = std::make_shared<SelectingDriver>(io_, *r->select, *session_, id, std::move(head), std::move(done),
                                           limits_);
  } else if (r->mux) {
    ex = std::make_shared<MuxStreamDriver>(*r->mux, *session_, id, std::move(head), std::move(done), limits_);
  } else {
    ex = std::make_shared<AsioUpstreamDriver>(io_, *session_, id, *r->pool, std::move(head), std::move(done),
                                              limits_);
  }
  exchanges_.emplace(id, ex);
  ex->start(body, fin);
}

void EdgeSession::remove_later(wt::StreamId id) {
  asio::post(io_, [this, alive = std::weak_ptr<int>(alive_), id] {
    if (!alive.expired()) exchanges_.erase(id);
  });
}

void EdgeSession::on_tcp_head_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  auto h = tcp_heads_.find(id);
  tunnel::TcpStreamHead head;
  size_t used = 0;
  const auto e = h->second.feed(data, used, head);
  session_->consume(id, used);
  data = data.subspan(used);
  if (e == tunnel::WireError::kNeedMore && !fin) return;
  tcp_heads_.erase(h);
  if (e != tunnel::WireError::kNone) {
    session_->consume(id, data.size());
    return refuse_stream(id, e == tunnel::WireError::kNeedMore
                                 ? std::string("tcp-stream ended inside its head")
                                 : std::string("bad tcp-stream head: ") + tunnel::to_string(e));
  }
  const TunnelRoute* r = route(head.tunnel_id);
  if (!r || !r->tcp) {
    session_->consume(id, data.size());
    return refuse_stream(
        id, "tcp-stream for tunnel id " + std::to_string(head.tunnel_id) + ", which is no tcp tunnel here");
  }
  const uint32_t tunnel_id = head.tunnel_id;
  auto done = [this, alive = std::weak_ptr<int>(alive_), id, tunnel_id](bool clean) {
    if (alive.expired()) return;
    if (callbacks_.on_tcp_closed) callbacks_.on_tcp_closed(tunnel_id, clean);
    remove_later(id);
  };
  auto ex = std::make_shared<TcpStreamDriver>(io_, *session_, id, *r->tcp, head, std::move(done));
  exchanges_.emplace(id, ex);
  ex->start(data, fin);
}

void EdgeSession::on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) {
  if (control_id_ && id == *control_id_) {
    // No application code: the transport's WT_SESSION_GONE, sent when the edge closes the session.
    // Its CLOSE_WEBTRANSPORT_SESSION (with the real code and reason) follows on the CONNECT stream.
    if (!code) return;
    return close(tunnel::kCloseProtocolError, "the edge reset the control stream");
  }
  kinds_.erase(id);
  heads_.erase(id);
  tcp_heads_.erase(id);
  if (auto ex = exchanges_.find(id); ex != exchanges_.end()) {
    auto keep = ex->second;
    keep->on_reset(code);
    return;
  }
  if (relays_) relays_->on_stream_reset(id, code);
}

void EdgeSession::on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) {
  if (control_id_ && id == *control_id_) {
    return close(tunnel::kCloseProtocolError, "the edge stopped reading the control stream");
  }
  if (auto ex = exchanges_.find(id); ex != exchanges_.end()) {
    auto keep = ex->second;
    keep->on_stop_sending(code);
    return;
  }
  if (relays_) relays_->on_stop_sending(id, code);
}

void EdgeSession::on_stream_writable(wt::StreamId id) {
  if (control_id_ && id == *control_id_) return flush_control();
  if (auto ex = exchanges_.find(id); ex != exchanges_.end()) {
    auto keep = ex->second;
    keep->on_writable();
    return;
  }
  if (relays_) relays_->on_stream_writable(id);
}

void EdgeSession::on_stream_closed(wt::StreamId id) {
  kinds_.erase(id);
  heads_.erase(id);
  tcp_heads_.erase(id);
  if (auto ex = exchanges_.find(id); ex != exchanges_.end()) {
    auto keep = ex->second;
    keep->on_stream_closed();  // no-op when it finished normally
    exchanges_.erase(id);
    return;
  }
  if (relays_) relays_->on_stream_closed(id);
}

void EdgeSession::on_closed(uint32_t code, std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  heartbeat_.cancel();
  telemetry_timer_.cancel();
  renew_timer_.cancel();
  auto exchanges = std::move(exchanges_);
  exchanges_.clear();
  kinds_.clear();
  heads_.clear();
  tcp_heads_.clear();
  for (auto& [id, ex] : exchanges) ex->on_session_gone();
  if (relays_) relays_->on_tunnel_closed();
  if (udp_) udp_->close_all();
  session_ = nullptr;
  if (callbacks_.on_closed) callbacks_.on_closed(code, std::string(reason));
}

void EdgeSession::on_datagram(std::span<const uint8_t> payload) {
  bytes_received_ += payload.size();
  if (closed_) return;
  if (const auto udp = tunnel::decode_udp_datagram(payload)) {
    if (tunnel::udp_flow_opener(udp->flow_id) == tunnel::FlowOpener::kAgent) {
      // Answers on a `connect --udp` flow (tunnel id 0); one of no flow open here is dropped.
      auto it = udp_connects_.find(udp->flow_id);
      if (it != udp_connects_.end() && udp->tunnel_id == 0)
        it->second.sink->on_udp_packet(udp->flow_id, udp->payload);
      else
        ++udp_connect_unknown_;
      return;
    }
    if (udp_) {
      // Only a new flow makes the session busy; while flows exist, busy() says so at each tick.
      const size_t flows = udp_->flow_count();
      udp_->on_datagram(*udp);
      if (udp_->flow_count() > flows) note_busy();
    }
    return;
  }
  if (relays_) relays_->on_datagram(payload);
}

void EdgeSession::on_streams_available() {
  if (relays_ && !closed_) relays_->on_streams_available();
}

}  // namespace wtmesh::agent
