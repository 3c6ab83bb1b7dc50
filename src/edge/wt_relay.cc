#include "edge/wt_relay.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "common/log_text.h"
#include "edge/visitor_gate.h"
#include "tunnel/wt_relay_wire.h"

namespace wtmesh::edge {

// One relayed stream: a public WebTransport stream and its tunnel stream (kind 0x03).
struct EdgeWtRelay::Link final : RequestStreamEvents {
  EdgeWtRelay* relay = nullptr;
  wt::StreamId pub = -1;
  StreamRef ref;
  bool to_agent = true;    // bytes flow public → tunnel (the public side can send on `pub`)
  bool from_agent = true;  // bytes flow tunnel → public
  tunnel::RelayPipe up, down;
  bool released = false;

  void on_response_data(std::span<const uint8_t> data, bool fin) override {
    relay->link_data_from_agent(*this, data, fin);
  }
  void on_request_writable() override { relay->pump_up(*this); }
  void on_stream_aborted(std::optional<uint32_t> code, std::string_view /*reason*/) override {
    relay->abort_link(*this, code.value_or(0), /*tell_public=*/true, /*tell_agent=*/false);
  }
  void on_request_stopped(std::optional<uint32_t> code) override {
    // The upstream will read no more: the public sender hears STOP_SENDING with its code.
    if (relay->public_ && to_agent && !up.finished()) {
      relay->public_->stop_sending(pub, code.value_or(0));
      relay->public_->consume(pub, up.abandon());
      relay->maybe_finish(*this);
    }
  }
};

EdgeWtRelay::EdgeWtRelay(TunnelDirectory& tunnels, std::string client)
    : tunnels_(tunnels), client_(std::move(client)) {}

EdgeWtRelay::~EdgeWtRelay() {
  for (auto& [id, link] : links_) {
    if (!link->released) tunnels_.cancel(link->ref, tunnel::kStreamCancelled);
  }
  if (session_ref_.valid() && !session_stream_done_) tunnels_.cancel(session_ref_, tunnel::kStreamCancelled);
  if (relay_id_ != 0) tunnels_.remove_relay(route_, relay_id_);
  if (public_ != nullptr && !public_closed_) public_->set_handler(nullptr);
}

wt::Accept EdgeWtRelay::start(const RouteLookup& route, const wt::SessionInfo& info) {
  route_ = route;
  // Visitor auth, as for every HTTP request to the tunnel (edge/visitor_gate.h). No page is served
  // here: a CONNECT is no page request, so a challenge tunnel wants the pass cookie or a credential.
  VisitorGate::Decision admitted;
  std::string target = info.path;
  if (VisitorGate* gate = tunnels_.visitor_gate(route)) {
    const std::string_view host = std::string_view(info.authority).substr(0, info.authority.rfind(':'));
    std::string lower(host);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    admitted = gate->check(VisitorRequest{client_, {}, lower, "CONNECT", info.path, info.headers},
                           std::chrono::steady_clock::now());
    switch (admitted.verdict) {
      case VisitorGate::Verdict::kAllow:
        break;
      case VisitorGate::Verdict::kUnauthorized:
        spdlog::info("wt-relay {}: {} refused: 401 {}", client_, log_text(info.authority), admitted.detail);
        return {
            401, nullptr, {{"www-authenticate", gate->challenge(lower)}, {"wtmesh-error", admitted.detail}}};
      case VisitorGate::Verdict::kRateLimited:
        spdlog::info("wt-relay {}: {} refused: 429 {}", client_, log_text(info.authority), admitted.detail);
        return {429, nullptr, {{"retry-after", "10"}, {"wtmesh-error", admitted.detail}}};
      default:
        spdlog::info("wt-relay {}: {} refused: 403 {}", client_, log_text(info.authority), admitted.detail);
        return {403, nullptr, {{"wtmesh-error", admitted.detail}}};
    }
  }
  relay_id_ = tunnels_.add_relay(route, this);
  if (relay_id_ == 0) {
    return {
        503,
        nullptr,
        {{"wtmesh-error", "the tunnel's session is gone or holds as many WebTransport sessions as it may"}}};
  }
  const auto status = tunnels_.open_request(route, client_, this, &session_ref_);
  if (status != TunnelDirectory::OpenStatus::kOpened) {
    tunnels_.remove_relay(route, relay_id_);
    relay_id_ = 0;
    return {503, nullptr, {{"wtmesh-error", "the tunnel has no stream free now"}}};
  }
  tunnel::WtSessionOpen open;
  open.relay_id = relay_id_;
  open.request.tunnel_id = route.tunnel_id;
  open.request.method = "CONNECT";
  tunnel::HeaderPairs fields;
  for (const auto& [name, value] : info.headers) {
    if (!name.starts_with(':')) fields.emplace_back(name, value);
  }
  VisitorGate::apply(admitted, fields, target);
  open.request.target = target;
  open.request.authority = info.authority;
  open.request.has_body = true;  // capsules follow
  open.request.headers = std::move(fields);
  if (open.request.headers.size() > tunnel::kMaxHeaderCount)
    open.request.headers.resize(tunnel::kMaxHeaderCount);
  session_out_ = tunnel::encode_wt_session_open(open);
  flush_session_stream();
  spdlog::info("wt-relay {}: {} {} relayed to tunnel {} (relay id {})", client_, log_text(info.authority),
               log_target(target), route.pattern, relay_id_);
  return {200, this, {}};
}

// --- the session stream -----------------------------------------------------------------------------

void EdgeWtRelay::send_capsule(const wt::Capsule& capsule, bool fin) {
  if (session_fin_ || session_stream_done_ || !session_ref_.valid()) return;
  wt::serialize_capsule(capsule, session_out_);
  session_fin_ = fin;
  flush_session_stream();
}

void EdgeWtRelay::flush_session_stream() {
  if (session_stream_done_ || !session_ref_.valid()) return;
  if (session_out_.empty() && !session_fin_) return;
  const size_t n = tunnels_.write(session_ref_, session_out_, session_fin_);
  session_out_.erase(session_out_.begin(), session_out_.begin() + static_cast<std::ptrdiff_t>(n));
  if (session_out_.empty() && session_fin_) {
    session_stream_done_ = true;
    tunnels_.release(session_ref_);
  }
}

void EdgeWtRelay::on_response_data(std::span<const uint8_t> data, bool fin) {
  tunnels_.consume(session_ref_, data.size());  // parsed at once into bounded values
  if (!agent_answered_) {
    tunnel::ResponseHead head;
    const tunnel::WireError e = answer_.feed(data, head);
    if (e == tunnel::WireError::kNeedMore) {
      if (fin) close_public(kCloseTunnelGone, "the agent ended the session stream before answering");
      return;
    }
    if (e != tunnel::WireError::kNone) {
      close_public(kCloseTunnelGone, std::string("bad answer from the agent: ") + tunnel::to_string(e));
      return;
    }
    agent_answered_ = true;
    if (head.status < 200 || head.status > 299) {
      const std::string* why = wt::find_header(head.headers, "wtmesh-error");
      close_public(static_cast<uint32_t>(head.status),
                   "upstream refused: HTTP " + std::to_string(head.status) + (why ? ": " + *why : ""));
      return;
    }
    const std::vector<uint8_t> rest = answer_.take_body();
    if (!rest.empty() || fin) on_response_data_capsules(rest, fin);
    return;
  }
  on_response_data_capsules(data, fin);
}

void EdgeWtRelay::on_response_data_capsules(std::span<const uint8_t> data, bool fin) {
  std::vector<wt::Capsule> out;
  const wt::CapsuleError e = capsules_.feed(data, out);
  for (const auto& c : out) {
    if (const auto* close = std::get_if<wt::CloseSessionCapsule>(&c)) {
      close_public(close->code, close->message);
      return;
    }
    if (std::holds_alternative<wt::DrainSessionCapsule>(c) && public_ != nullptr && !public_closed_) {
      public_->drain();
    }
  }
  if (e != wt::CapsuleError::kNone) {
    close_public(kCloseTunnelGone, std::string("bad capsule from the agent: ") + wt::to_string(e));
    return;
  }
  if (fin) close_public(0, "");
}

void EdgeWtRelay::on_stream_aborted(std::optional<uint32_t> /*code*/, std::string_view reason) {
  session_stream_done_ = true;
  close_public(kCloseTunnelGone, std::string("tunnel: ") + std::string(reason));
}

void EdgeWtRelay::close_public(uint32_t code, std::string_view reason) {
  if (public_ == nullptr || public_closed_) return;
  public_->close(code, reason);  // on_closed follows
}

// --- the public session -----------------------------------------------------------------------------

EdgeWtRelay::Link* EdgeWtRelay::open_link(wt::StreamId pub, const StreamRef& ref, bool to_agent,
                                          bool from_agent, std::vector<uint8_t> prefix) {
  auto link = std::make_unique<Link>();
  link->relay = this;
  link->pub = pub;
  link->ref = ref;
  link->to_agent = to_agent;
  link->from_agent = from_agent;
  link->up = tunnel::RelayPipe(std::move(prefix));
  Link* raw = link.get();
  links_[pub] = std::move(link);
  return raw;
}

EdgeWtRelay::Link* EdgeWtRelay::link_for(wt::StreamId pub) {
  auto it = links_.find(pub);
  return it == links_.end() ? nullptr : it->second.get();
}

void EdgeWtRelay::on_incoming_stream(wt::StreamId id, bool bidi) {
  if (public_closed_ || public_ == nullptr) return;
  Link* link = open_link(id, StreamRef{}, /*to_agent=*/true, /*from_agent=*/bidi,
                         tunnel::encode_wt_stream_open({relay_id_, !bidi}));
  if (links_.size() > tunnel::kMaxRelayedStreams ||
      tunnels_.open_request(route_, client_, link, &link->ref) != TunnelDirectory::OpenStatus::kOpened) {
    links_.erase(id);
    spdlog::warn("wt-relay {}: no tunnel stream for public stream {} (relay id {}): refused", client_, id,
                 relay_id_);
    public_->stop_sending(id, 0);
    if (bidi) public_->reset_stream(id, 0);
    return;
  }
  spdlog::debug("wt-relay {}: public stream {} -> tunnel stream {}", client_, id, link->ref.id);
  pump_up(*link);  // the opening goes out now
}

void EdgeWtRelay::pump_up(Link& link) {
  if (public_ == nullptr) return;
  link.up.pump([&](std::span<const uint8_t> b, bool fin) { return tunnels_.write(link.ref, b, fin); },
               [&](size_t n) { public_->consume(link.pub, n); });
  maybe_finish(link);
}

void EdgeWtRelay::pump_down(Link& link) {
  if (public_ == nullptr) return;
  spdlog::debug("wt-relay {}: public stream {} writable, {} held", client_, link.pub, link.down.held());
  link.down.pump([&](std::span<const uint8_t> b, bool fin) { return public_->write(link.pub, b, fin); },
                 [&](size_t n) { tunnels_.consume(link.ref, n); });
  maybe_finish(link);
}

void EdgeWtRelay::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  Link* link = link_for(id);
  if (link == nullptr || public_ == nullptr) {
    if (public_ != nullptr) public_->consume(id, data.size());
    return;
  }
  const bool ok = link->up.push(
      data, fin, kMaxHeld,
      [&](std::span<const uint8_t> b, bool f) { return tunnels_.write(link->ref, b, f); },
      [&](size_t n) { public_->consume(id, n); });
  if (!ok) return abort_link(*link, tunnel::kStreamProtocolError, true, true);
  maybe_finish(*link);
}

void EdgeWtRelay::link_data_from_agent(Link& link, std::span<const uint8_t> data, bool fin) {
  if (!link.from_agent) {  // the agent's direction of a public uni stream: only its FIN comes
    tunnels_.consume(link.ref, data.size());
    if (fin) link.down.abandon();
    maybe_finish(link);
    return;
  }
  const bool ok = link.down.push(
      data, fin, kMaxHeld, [&](std::span<const uint8_t> b, bool f) { return public_->write(link.pub, b, f); },
      [&](size_t n) { tunnels_.consume(link.ref, n); });
  if (!ok) return abort_link(link, tunnel::kStreamProtocolError, true, true);
  if (link.down.held() > 0)
    spdlog::debug("wt-relay {}: public stream {} holds {}", client_, link.pub, link.down.held());
  maybe_finish(link);
}

void EdgeWtRelay::on_stream_writable(wt::StreamId id) {
  if (Link* link = link_for(id)) pump_down(*link);
}

void EdgeWtRelay::on_stream_reset(wt::StreamId id, std::optional<uint32_t> code) {
  // The public sender reset: the agent's upstream stream is reset with the same code.
  if (Link* link = link_for(id)) abort_link(*link, code.value_or(0), /*tell_public=*/false, true);
}

void EdgeWtRelay::on_stop_sending(wt::StreamId id, std::optional<uint32_t> code) {
  if (Link* link = link_for(id)) abort_link(*link, code.value_or(0), false, true);
}

void EdgeWtRelay::on_stream_closed(wt::StreamId id) {
  Link* link = link_for(id);
  if (link == nullptr) return;
  // The transport forgot the public stream: both of its directions ended there. Nothing more can be
  // written to it, but what the client sent before its FIN still goes on to the agent.
  tunnels_.consume(link->ref, link->down.abandon());
  if (link->to_agent && !link->up.finished() && !link->up.source_ended()) {
    return abort_link(*link, tunnel::kStreamCancelled, /*tell_public=*/false, /*tell_agent=*/true);
  }
  maybe_finish(*link);
}

void EdgeWtRelay::abort_link(Link& link, uint32_t code, bool tell_public, bool tell_agent) {
  if (tell_agent && !link.released) tunnels_.cancel(link.ref, code);
  link.released = true;
  if (tell_public && public_ != nullptr && !public_closed_) {
    public_->reset_stream(link.pub, code);
    public_->stop_sending(link.pub, code);
  }
  if (public_ != nullptr) public_->consume(link.pub, link.up.abandon());
  link.down.abandon();
  links_.erase(link.pub);  // `link` is gone from here on
}

void EdgeWtRelay::maybe_finish(Link& link) {
  const bool up_done = !link.to_agent || link.up.finished();
  const bool down_done = !link.from_agent || link.down.finished();
  if (!up_done || !down_done) return;
  if (!link.released) tunnels_.release(link.ref);
  link.released = true;
  links_.erase(link.pub);
}

void EdgeWtRelay::on_datagram(std::span<const uint8_t> payload) {
  if (relay_id_ == 0 || !tunnels_.send_relay_datagram(route_, relay_id_, payload)) ++datagrams_dropped_;
}

void EdgeWtRelay::on_drain() { send_capsule(wt::DrainSessionCapsule{}, false); }

void EdgeWtRelay::on_closed(uint32_t code, std::string_view reason) {
  if (public_closed_) return;
  public_closed_ = true;
  spdlog::info("wt-relay {}: public session closed, code {} \"{}\" (relay id {}, {} datagram(s) dropped)",
               client_, code, reason, relay_id_, datagrams_dropped_);
  end_relay();
  send_capsule(wt::CloseSessionCapsule{code, std::string(reason)}, /*fin=*/true);
  if (!session_ref_.valid()) session_stream_done_ = true;
  public_ = nullptr;
}

void EdgeWtRelay::end_relay() {
  for (auto& [id, link] : links_) {
    if (!link->released) tunnels_.cancel(link->ref, tunnel::kStreamCancelled);
    link->released = true;
  }
  links_.clear();
  if (relay_id_ != 0) tunnels_.remove_relay(route_, std::exchange(relay_id_, 0));
}

// --- from the agent ---------------------------------------------------------------------------------

RequestStreamEvents* EdgeWtRelay::on_agent_stream(const StreamRef& ref, bool uni) {
  if (public_ == nullptr || public_closed_ || links_.size() >= tunnel::kMaxRelayedStreams) return nullptr;
  const auto pub = uni ? public_->open_uni_stream() : public_->open_bidi_stream();
  if (!pub) return nullptr;
  Link* link = open_link(*pub, ref, /*to_agent=*/!uni, /*from_agent=*/true, {});
  if (uni) tunnels_.write(link->ref, {}, true);  // our direction of the tunnel stream carries nothing
  return link;
}

void EdgeWtRelay::on_relay_refused(std::string_view reason) {
  relay_id_ = 0;  // the session never held it
  spdlog::info("wt-relay {}: the tunnel's session refused the relay: {}", client_, reason);
  close_public(503, reason);
}

void EdgeWtRelay::on_relay_datagram(std::span<const uint8_t> payload) {
  if (public_ == nullptr || public_closed_ || payload.size() > public_->max_datagram_size() ||
      !public_->send_datagram(payload)) {
    ++datagrams_dropped_;
  }
}

}  // namespace wtmesh::edge
