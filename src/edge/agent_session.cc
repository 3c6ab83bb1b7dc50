#include "edge/agent_session.h"

#include <spdlog/spdlog.h>

#include "common/log_text.h"

namespace wtmesh::edge {

AgentSession::AgentSession(const AgentSessionConfig& config, RouteTable& routes, uint64_t serial,
                           std::string owner, tunnel::TokenClaims claims, SteadyTime token_deadline,
                           Hooks hooks)
    : config_(config),
      routes_(routes),
      serial_(serial),
      owner_(std::move(owner)),
      claims_(std::move(claims)),
      hooks_(std::move(hooks)),
      heartbeat_(config_.ping_interval, tunnel::Heartbeat::kDefaultMissedIntervals, now()),
      last_heard_(heartbeat_.last_received()),
      token_deadline_(token_deadline) {}

AgentSession::~AgentSession() {
  // Normally on_closed already ran; if the owner drops us first, stop the session talking to us.
  if (session_ != nullptr && !closed_) session_->set_handler(nullptr);
}

SteadyTime AgentSession::now() const {
  return config_.clock ? config_.clock() : std::chrono::steady_clock::now();
}

void AgentSession::close(uint32_t code, std::string_view reason) {
  if (closed_ || session_ == nullptr) return;
  spdlog::info("tunnel {}: closing session, code {} ({})", owner_, code, reason);
  session_->close(code, reason);  // calls on_closed()
}

void AgentSession::drain() {
  if (closed_ || session_ == nullptr || drain_sent_) return;
  drain_sent_ = true;
  spdlog::info("tunnel {}: draining: asking the agent to move to another session", owner_);
  session_->drain();
}

// --- time -----------------------------------------------------------------------------------------

std::optional<SteadyTime> AgentSession::quiet_probe_deadline() const {
  if (!control_ || requests_.empty()) return std::nullopt;
  SteadyTime d = last_heard_ + kQuietProbeAfter;
  if (last_probe_) d = std::max(d, *last_probe_ + kProbeInterval);
  return d;
}

std::optional<SteadyTime> AgentSession::next_deadline() const {
  if (closed_) return std::nullopt;
  SteadyTime d = std::min(token_deadline_, heartbeat_.timeout_at());
  if (control_) d = std::min(d, heartbeat_.next_ping_at());  // PINGs need the control stream
  if (auto q = quiet_probe_deadline()) d = std::min(d, *q);
  return d;
}

void AgentSession::on_tick(SteadyTime t) {
  if (closed_) return;
  if (t >= token_deadline_) {
    close(tunnel::kCloseTokenExpired, "token expired");
    return;
  }
  if (heartbeat_.timed_out(t)) {
    close(tunnel::kCloseHeartbeatTimeout, "no heartbeat from the agent");
    return;
  }
  if (control_) {
    // The agent PINGs every interval too: an agent heard within the last 1.5 gets no PING of ours
    // (docs/protocol.md §3). The route lease is renewed on the schedule either way.
    const bool due = t >= heartbeat_.next_ping_at();
    if (auto ping = heartbeat_.ping_due(t, /*unless_heard=*/true)) send_control(*ping);
    if (due && !tunnels_.empty()) routes_.renew(owner_, t);
  }
  if (auto q = quiet_probe_deadline(); q && t >= *q) probe();
}

void AgentSession::probe() {
  if (closed_ || !control_) return;
  const SteadyTime t = now();
  if (last_probe_ && t - *last_probe_ < kProbeInterval) return;
  last_probe_ = t;
  send_control(heartbeat_.probe(t));
}

// --- incoming streams -----------------------------------------------------------------------------

void AgentSession::refuse_stream(wt::StreamId id, StreamRefusal why) {
  refused_.insert(id);
  if (config_.metrics != nullptr) config_.metrics->on_stream_refused(why);
  if (session_ == nullptr) return;
  session_->stop_sending(id, tunnel::kStreamProtocolError);
  session_->reset_stream(id, tunnel::kStreamProtocolError);
}

void AgentSession::on_incoming_stream(wt::StreamId id, bool bidi) {
  if (closed_) return;
  if (!bidi) {
    refuse_stream(id, StreamRefusal::kUni);  // unidirectional streams are not used in v1
    return;
  }
  undecided_[id];
}

void AgentSession::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  if (closed_ || session_ == nullptr) return;
  if (!data.empty() || fin) last_heard_ = now();
  if (control_ && id == *control_) {
    session_->consume(id, data.size());  // parsed at once into bounded frames
    on_control_bytes(data, fin);
    return;
  }
  if (auto it = requests_.find(id); it != requests_.end()) {
    it->second.events->on_response_data(data, fin);  // the public side consumes once written onward
    return;
  }
  if (relay_heads_.count(id) != 0) {
    on_relay_stream_bytes(id, data, fin);
    return;
  }
  if (connect_heads_.count(id) != 0) {
    on_connect_stream_bytes(id, data, fin);
    return;
  }
  auto it = undecided_.find(id);
  if (it == undecided_.end()) {
    session_->consume(id, data.size());  // refused, cancelled or released: drop
    return;
  }
  // The kind varint: at most 8 bytes, possibly split across calls.
  const size_t used = it->second.feed(data);
  session_->consume(id, used);
  const auto kind = it->second.kind();
  if (!kind) {
    if (fin) {
      undecided_.erase(it);
      refuse_stream(id, StreamRefusal::kMalformed);
    }
    return;
  }
  undecided_.erase(it);
  const auto rest = data.subspan(used);
  if (tunnel::accept_stream_kind(*kind, tunnel::Peer::kEdge) == tunnel::StreamKind::kControl) {
    if (control_) {
      close(tunnel::kCloseProtocolError, "a second control stream");
      return;
    }
    control_ = id;
    deadline_moved();  // PINGs wait for the control stream
    session_->consume(id, rest.size());
    on_control_bytes(rest, fin);
    flush_control();
    return;
  }
  if (tunnel::accept_stream_kind(*kind, tunnel::Peer::kEdge) == tunnel::StreamKind::kWtStream) {
    relay_heads_[id];
    if (!rest.empty() || fin) on_relay_stream_bytes(id, rest, fin);
    return;
  }
  if (tunnel::accept_stream_kind(*kind, tunnel::Peer::kEdge) == tunnel::StreamKind::kConnectStream) {
    connect_heads_[id];
    if (!rest.empty() || fin) on_connect_stream_bytes(id, rest, fin);
    return;
  }
  session_->consume(id, rest.size());
  refuse_stream(id, StreamRefusal::kKind);  // unknown kind, or one only the edge may open
}

void AgentSession::on_connect_stream_bytes(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  auto it = connect_heads_.find(id);
  tunnel::ConnectHead head;
  size_t used = 0;
  const tunnel::WireError e = it->second.feed(data, used, head);
  session_->consume(id, used);
  if (e == tunnel::WireError::kNeedMore && !fin) return;
  connect_heads_.erase(it);
  const auto rest = data.subspan(used);
  if (e != tunnel::WireError::kNone) {
    session_->consume(id, rest.size());
    refuse_stream(id, StreamRefusal::kMalformed);  // a malformed head, or a FIN inside it
    return;
  }
  // NAME alone means NAME.DOMAIN, as the agent's --name does.
  std::string name = lower_ascii(head.name);
  if (name.find('.') == std::string::npos) name += "." + lower_ascii(config_.domain);
  std::string problem;
  tunnel::ConnectStatus status = tunnel::ConnectStatus::kConnected;
  if (!tunnel::is_valid_host_pattern(name, /*allow_wildcard=*/false)) {
    status = tunnel::ConnectStatus::kInvalid;
    problem = "not a name";
  } else if (!tunnel::token_may_connect(claims_, name)) {
    status = tunnel::ConnectStatus::kNotInScope;
    problem = "not in token scope";
  } else if (connect_stream_count() >= config_.max_connect_streams) {
    status = tunnel::ConnectStatus::kLimit;
    problem = "this session holds " + std::to_string(config_.max_connect_streams) + " connections, its limit";
  } else if (head.udp_flow && config_.udp_connects == nullptr) {
    status = tunnel::ConnectStatus::kUnknown;
    problem = "this edge has no UDP tunnels";
  } else if (!head.udp_flow && config_.connect == nullptr) {
    status = tunnel::ConnectStatus::kUnknown;
    problem = "this edge reaches no names";
  }
  if (status != tunnel::ConnectStatus::kConnected) {
    session_->consume(id, rest.size());
    refuse_connect(id, name, status, problem);
    return;
  }
  if (head.udp_flow) return open_udp_connect(id, name, *head.udp_flow, rest, fin);
  hold_request(id, kConnectClient, nullptr);
  RequestStreamEvents* events = config_.connect->on_connect(StreamRef{serial_, id, false}, name);
  if (closed_) return;
  auto req = requests_.find(id);
  if (req == requests_.end()) {  // answered (refused) at once: its bytes are dropped
    session_->consume(id, rest.size());
    return;
  }
  req->second.events = events;
  if (!rest.empty() || fin) events->on_response_data(rest, fin);
}

void AgentSession::open_udp_connect(wt::StreamId id, const std::string& name, uint64_t flow_id,
                                    std::span<const uint8_t> rest, bool fin) {
  if (!udp_connects_) udp_connects_ = std::make_unique<AgentUdpConnects>(*this, *config_.udp_connects);
  RequestStreamEvents* events = udp_connects_->open(id, flow_id, name);
  if (events == nullptr) {
    session_->consume(id, rest.size());
    refuse_connect(id, name, tunnel::ConnectStatus::kInvalid,
                   "flow " + std::to_string(flow_id) + " is already open on this session");
    return;
  }
  // Held like a request stream, counted toward the connect cap; answered once the flow is.
  hold_request(id, kConnectClient, events);
  if (!rest.empty() || fin) events->on_response_data(rest, fin);
}

void AgentSession::refuse_connect(wt::StreamId id, const std::string& name, tunnel::ConnectStatus status,
                                  const std::string& message) {
  if (refusal_log_.allow(now())) {
    spdlog::info("tunnel {}: connect {} refused: {} ({}){}", owner_, log_text(name, 64), message,
                 tunnel::to_string(status), refusal_log_.suppressed_note());
  }
  const std::vector<uint8_t> reply = tunnel::encode_connect_reply(status, message);
  // The agent's bytes are dropped from now on (on_stream_data credits them).
  if (session_->write(id, reply, true) < reply.size()) refuse_stream(id, StreamRefusal::kKind);
}

void AgentSession::on_relay_stream_bytes(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  auto it = relay_heads_.find(id);
  tunnel::WtStreamOpen open;
  size_t used = 0;
  const tunnel::WireError e = it->second.feed(data, open, &used);
  session_->consume(id, used);
  if (e == tunnel::WireError::kNeedMore) {
    if (fin) {
      relay_heads_.erase(it);
      refuse_stream(id, StreamRefusal::kMalformed);
    }
    return;
  }
  relay_heads_.erase(it);
  const auto rest = data.subspan(used);
  auto relay = relays_.find(open.relay_id);
  RequestStreamEvents* events = nullptr;
  if (e == tunnel::WireError::kNone && relay != relays_.end())
    events = relay->second->on_agent_stream(StreamRef{serial_, id}, open.uni);
  if (events == nullptr) {
    session_->consume(id, rest.size());
    refuse_stream(
        id,
        StreamRefusal::kRelay);  // a bad opening, a relayed session that is gone, or one at its stream cap
    return;
  }
  // Held like a request stream; the relay is its own client key (agent-opened, so not capped here).
  hold_request(id, "wt-relay", events);
  if (!rest.empty() || fin) events->on_response_data(rest, fin);
}

void AgentSession::count_tunnels() {
  const size_t now_held = tunnels_.size();
  if (now_held == counted_tunnels_) return;
  const size_t before = std::exchange(counted_tunnels_, now_held);
  if (hooks_.tunnels_changed) hooks_.tunnels_changed(before, now_held);
}

uint64_t AgentSession::add_relay(WtRelayPeer* peer) {
  if (closed_ || session_ == nullptr || relays_.size() >= tunnel::kMaxRelayedSessions) return 0;
  const uint64_t base = uint64_t{config_.relay_id_block} * kRelayIdBlock;
  uint64_t id = 0;
  do {
    last_relay_id_ = last_relay_id_ % (kRelayIdBlock - 1) + 1;
    id = base + last_relay_id_;
  } while (relays_.count(id) != 0);
  relays_[id] = peer;
  return id;
}

bool AgentSession::add_relay_as(uint64_t relay_id, WtRelayPeer* peer) {
  if (closed_ || session_ == nullptr || relays_.size() >= tunnel::kMaxRelayedSessions) return false;
  if (relay_id == 0 || relay_id > tunnel::kMaxRelayId) return false;
  return relays_.emplace(relay_id, peer).second;
}

void AgentSession::remove_relay(uint64_t relay_id) { relays_.erase(relay_id); }

bool AgentSession::send_relay_datagram(uint64_t relay_id, std::span<const uint8_t> payload) {
  if (closed_ || session_ == nullptr) return false;
  const std::vector<uint8_t> d = tunnel::encode_datagram(relay_id, payload);
  if (d.size() > session_->max_datagram_size() || !session_->send_datagram(d)) {
    ++relay_datagrams_dropped_;
    return false;
  }
  return true;
}

void AgentSession::on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) {
  if (closed_) return;
  if (control_ && id == *control_) {
    close(tunnel::kCloseProtocolError, "control stream reset");
    return;
  }
  if (auto it = requests_.find(id); it != requests_.end()) {
    RequestStreamEvents* events = it->second.events;
    forget_request(id);
    if (session_ != nullptr) session_->reset_stream(id, tunnel::kStreamCancelled);  // our half is moot too
    events->on_stream_aborted(code, "request stream reset by the agent");
    return;
  }
  undecided_.erase(id);
  relay_heads_.erase(id);
  connect_heads_.erase(id);
}

void AgentSession::on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) {
  if (closed_) return;
  if (control_ && id == *control_) {
    close(tunnel::kCloseProtocolError, "control stream stopped");
    return;
  }
  if (auto it = requests_.find(id); it != requests_.end()) it->second.events->on_request_stopped(code);
}

void AgentSession::on_stream_writable(wt::StreamId id) {
  if (closed_) return;
  if (control_ && id == *control_) {
    flush_control();
    return;
  }
  if (auto it = requests_.find(id); it != requests_.end()) it->second.events->on_request_writable();
}

void AgentSession::on_stream_closed(wt::StreamId id) {
  forget_request(id);
  undecided_.erase(id);
  refused_.erase(id);
  relay_heads_.erase(id);
  connect_heads_.erase(id);
}

size_t AgentSession::max_datagram_size() const {
  return closed_ || session_ == nullptr ? 0 : session_->max_datagram_size();
}

bool AgentSession::send_datagram(std::span<const uint8_t> datagram) {
  return !closed_ && session_ != nullptr && session_->send_datagram(datagram);
}

void AgentSession::on_datagram(std::span<const uint8_t> payload) {
  // Flow 0 is telemetry (§2.2); UDP tunnels' flows (§4.4) and relayed WebTransport sessions (§7)
  // have theirs; any other flow is dropped (§2.1).
  if (closed_) return;
  if (const auto udp = tunnel::decode_udp_datagram(payload)) {
    if (udp_connects_ && tunnel::udp_flow_opener(udp->flow_id) == tunnel::FlowOpener::kAgent) {
      udp_connects_->on_datagram(*udp);  // the agent's own flows: `connect --udp` (§4.3)
      return;
    }
    if (config_.udp != nullptr) config_.udp->on_agent_datagram(serial_, *udp);
    return;
  }
  const auto d = tunnel::decode_datagram(payload);
  if (!d) return;
  if (d->flow_id == tunnel::kTelemetryFlowId) {
    tunnel::TelemetryReport report;
    const bool ok = tunnel::decode_telemetry(d->payload, report) == tunnel::TelemetryError::kNone;
    if (ok) {
      telemetry_ = std::move(report);
      telemetry_at_ = now();
    } else {
      ++telemetry_invalid_;
    }
    if (config_.metrics != nullptr) config_.metrics->on_telemetry(ok);
    return;
  }
  if (auto it = relays_.find(d->flow_id); it != relays_.end()) it->second->on_relay_datagram(d->payload);
}

void AgentSession::on_closed(uint32_t code, std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  session_ = nullptr;
  std::vector<std::string> hostnames;
  for (auto& [id, tunnel] : tunnels_) {
    hostnames.push_back(tunnel.hostname);
    unpublish(id, tunnel);
  }
  // Issued after any claim still under way, so it releases what those take too.
  routes_.release_all(owner_, now());
  tunnels_.clear();
  count_tunnels();
  pending_claims_.clear();
  awaiting_hand_over_.clear();
  spdlog::info("tunnel {}: session ended, code {} \"{}\", {} route(s) released", owner_, code, reason,
               hostnames.size());
  // The public side learns at once, so waiting clients get their 502 now.
  auto requests = std::exchange(requests_, {});
  per_client_.clear();
  const std::string why = "session closed" + (reason.empty() ? std::string() : ": " + std::string(reason));
  for (auto& [id, stream] : requests) {
    if (stream.events != nullptr) stream.events->on_stream_aborted(std::nullopt, why);
  }
  undecided_.clear();
  relay_heads_.clear();
  connect_heads_.clear();
  relays_.clear();  // their session streams were aborted above
  if (hooks_.on_ended) hooks_.on_ended(serial_, hostnames);
}

// --- control stream -------------------------------------------------------------------------------

TunnelDirectory::OpenStatus AgentSession::open_request(std::string_view client, RequestStreamEvents* events,
                                                       wt::StreamId* id) {
  if (closed_ || session_ == nullptr) return TunnelDirectory::OpenStatus::kGone;
  auto held = per_client_.find(client);
  if (config_.max_streams_per_client > 0 && held != per_client_.end() &&
      held->second >= config_.max_streams_per_client) {
    return TunnelDirectory::OpenStatus::kClientLimit;
  }
  const auto sid = session_->open_bidi_stream();
  if (!sid) return TunnelDirectory::OpenStatus::kBusy;
  hold_request(*sid, client, events);
  *id = *sid;
  return TunnelDirectory::OpenStatus::kOpened;
}

size_t AgentSession::client_stream_count(std::string_view client) const {
  auto it = per_client_.find(client);
  return it == per_client_.end() ? 0 : it->second;
}

void AgentSession::hold_request(wt::StreamId id, std::string_view client, RequestStreamEvents* events) {
  auto held = per_client_.find(client);
  if (held == per_client_.end()) held = per_client_.emplace(std::string(client), 0).first;
  ++held->second;
  requests_[id] = RequestStream{events, held->first};
  deadline_moved();  // the quiet probe (kQuietProbeAfter) may be due sooner now
}

bool AgentSession::forget_request(wt::StreamId id) {
  auto it = requests_.find(id);
  if (it == requests_.end()) return false;
  if (auto held = per_client_.find(it->second.client); held != per_client_.end() && --held->second == 0) {
    per_client_.erase(held);
  }
  requests_.erase(it);
  return true;
}

size_t AgentSession::write(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  if (closed_ || session_ == nullptr || requests_.count(id) == 0) return 0;
  return session_->write(id, data, fin);
}

size_t AgentSession::send_capacity(wt::StreamId id) const {
  if (closed_ || session_ == nullptr || requests_.count(id) == 0) return 0;
  return session_->send_capacity(id);
}

void AgentSession::consume(wt::StreamId id, size_t n) {
  if (!closed_ && session_ != nullptr) session_->consume(id, n);
}

void AgentSession::cancel(wt::StreamId id, uint32_t code) {
  if (!forget_request(id) || closed_ || session_ == nullptr) return;
  session_->reset_stream(id, code);
  session_->stop_sending(id, code);
}

void AgentSession::release(wt::StreamId id) { forget_request(id); }

}  // namespace wtmesh::edge
