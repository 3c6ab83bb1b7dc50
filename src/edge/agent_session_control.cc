// AgentSession's control stream (docs/protocol.md §3): its frames, REGISTER (with the checks, the
// route-table claim and, for tcp and udp, the port), UNREGISTER, RENEW, and the control output. The
// streams, datagrams and timers are in agent_session.cc.
#include <spdlog/spdlog.h>

#include "common/log_text.h"
#include "common/text.h"
#include "edge/agent_session.h"

namespace wtmesh::edge {
namespace {

namespace refusal = tunnel::refusal;

}  // namespace

void AgentSession::on_control_bytes(std::span<const uint8_t> data, bool fin) {
  if (!data.empty()) heartbeat_.on_received(now());
  std::vector<tunnel::ControlFrame> frames;
  const tunnel::WireError err = reader_.feed(data, frames);
  for (const auto& f : frames) {
    if (closed_) return;
    handle_frame(f);
  }
  if (closed_) return;
  if (err != tunnel::WireError::kNone) {
    close(tunnel::kCloseProtocolError, std::string("control stream: ") + tunnel::to_string(err));
    return;
  }
  if (fin) close(tunnel::kCloseNormal, "control stream finished");
}

void AgentSession::handle_frame(const tunnel::ControlFrame& f) {
  const auto type = static_cast<tunnel::ControlType>(f.type);
  if (tunnel::sender_of(type) == tunnel::ControlSender::kEdge) return;  // edge→agent types: ignored
  const tunnel::ControlDecode d = tunnel::decode(f);
  if (type == tunnel::ControlType::kPong) {
    // Any control bytes count as a heartbeat (on_control_bytes); a PONG's content is not checked.
    if (const auto* pong = d.get<tunnel::Pong>()) heartbeat_.on_pong(*pong, now());
    return;
  }
  if (!d) {
    close(tunnel::kCloseProtocolError, d.describe());
    return;
  }
  if (const auto* reg = d.get<tunnel::Register>()) {
    handle_register(*reg);
  } else if (const auto* unreg = d.get<tunnel::Unregister>()) {
    handle_unregister(*unreg);
  } else if (const auto* ping = d.get<tunnel::Ping>()) {
    send_control(tunnel::Pong{ping->seq});
  } else if (const auto* renew = d.get<tunnel::Renew>()) {
    handle_renew(*renew);
  }
}

void AgentSession::handle_renew(const tunnel::Renew& r) {
  const SteadyTime t = now();
  RenewOutcome out;
  if (last_renew_ && t - *last_renew_ < kMinRenewInterval) {
    out.error = "renewals come at most every " + std::to_string(kMinRenewInterval.count()) + " s";
  } else if (!hooks_.on_renew) {
    out.error = "this edge does not renew sessions";
  } else {
    last_renew_ = t;
    out = hooks_.on_renew(*this, r.token);
  }
  if (!out.error.empty()) {
    spdlog::info("tunnel {}: renewal {} refused: {}", owner_, r.seq, out.error);
    send_control(tunnel::Renewed{r.seq, 0, out.error});
    return;
  }
  claims_ = std::move(out.claims);
  token_deadline_ = out.deadline;
  deadline_moved();
  const auto exp = std::chrono::floor<std::chrono::seconds>(claims_.expires_at.time_since_epoch()).count();
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(token_deadline_ - t).count();
  spdlog::info("tunnel {}: session renewed (credential {}), closes in {} s unless renewed again", owner_,
               claims_.credential_id, left);
  send_control(tunnel::Renewed{r.seq, static_cast<uint64_t>(std::max<int64_t>(exp, 1)), ""});
}

std::string AgentSession::hostname_problem(const std::string& h) const {
  if (!tunnel::is_valid_host_pattern(h, /*allow_wildcard=*/true)) return "not a host name";
  const std::string domain = lower_ascii(config_.domain);
  std::string_view name = h;
  if (name.starts_with("*.")) {
    name.remove_prefix(2);
    if (name == domain) return "";  // *.DOMAIN: every NAME.DOMAIN not registered exactly
  }
  if (name.size() <= domain.size() + 1 || !name.ends_with("." + domain)) {
    return "not a name under " + domain;
  }
  return "";
}

bool AgentSession::covered(const std::string& h) const {
  if (h.starts_with("*.")) {
    // A wildcard route needs the same wildcard in the token.
    for (const auto& p : claims_.hosts) {
      if (iequals(p, h)) return true;
    }
    return false;
  }
  return tunnel::token_covers_host(claims_, h);
}

void AgentSession::refuse(uint32_t id, const std::string& hostname, std::string_view code,
                          const std::string& message) {
  // An agent may send REGISTERs without end (10k names): one line each would flood the log.
  if (refusal_log_.allow(now())) {
    spdlog::info("tunnel {}: refused {} (id {}): {} - {}{}", owner_, log_text(hostname, 128), id, code,
                 message, refusal_log_.suppressed_note());
  }
  send_control(tunnel::Refused{id, hostname, std::string(code), message});
}

VisitorGate* AgentSession::visitor_gate(uint32_t id) const {
  auto it = tunnels_.find(id);
  return it == tunnels_.end() ? nullptr : it->second.visitor.get();
}

void AgentSession::handle_register(const tunnel::Register& reg) {
  const uint32_t id = reg.id;
  const std::string& raw_host = reg.hostname;
  if (tunnels_.count(id) != 0) {
    refuse(id, raw_host, refusal::kDuplicateId, "tunnel id " + std::to_string(id) + " is already registered");
    return;
  }
  const tunnel::TunnelTypeInfo* type = tunnel::find_tunnel_type(reg.type);
  const bool off = type && ((type->type == tunnel::TunnelType::kTcp && config_.tcp == nullptr) ||
                            (type->type == tunnel::TunnelType::kUdp && config_.udp == nullptr));
  if (!type || !type->served || off) {
    const std::string served = type && type->served ? "here" : "yet";
    refuse(id, raw_host, refusal::kInvalid,
           (type ? "tunnel type \"" + reg.type + "\" is reserved, not served " + served
                 : "unknown tunnel type \"" + reg.type.substr(0, 32) + "\"") +
               " (v1 serves \"http\", \"tcp\", \"udp\")");
    return;
  }
  const std::string_view route_type = type->type == tunnel::TunnelType::kTcp   ? kTcp
                                      : type->type == tunnel::TunnelType::kUdp ? kUdp
                                                                               : kHttp;
  if (!reg.visitor_error.empty()) {
    refuse(id, raw_host, refusal::kInvalid, "visitor auth: " + reg.visitor_error);
    return;
  }
  if (!reg.visitor.empty() && route_type != kHttp) {
    refuse(id, raw_host, refusal::kInvalid, "visitor auth applies to http tunnels only");
    return;
  }
  const auto min =
      std::max(config_.visitor_auth_min,
               config_.require_visitor_auth ? tunnel::VisitorAuthMin::kAny : tunnel::VisitorAuthMin::kNone);
  if (const std::string why = tunnel::visitor_auth_shortfall(reg.visitor, min);
      route_type == kHttp && !why.empty()) {
    refuse(id, raw_host, refusal::kInvalid, why);
    return;
  }
  const std::string hostname = lower_ascii(raw_host);
  if (const std::string problem = hostname_problem(hostname); !problem.empty()) {
    refuse(id, raw_host, refusal::kInvalid, "\"" + raw_host.substr(0, 64) + "\" is " + problem);
    return;
  }
  if (!covered(hostname)) {
    refuse(id, raw_host, refusal::kNotCovered, "the token does not cover " + hostname);
    return;
  }
  if (tunnels_.size() >= config_.max_tunnels) {
    if (config_.metrics != nullptr) config_.metrics->on_tunnel_refused(TunnelRefusal::kSessionCap);
    refuse(id, raw_host, refusal::kLimit,
           "at most " + std::to_string(config_.max_tunnels) + " tunnels per session");
    return;
  }
  if (const size_t cap = hooks_.subject_full ? hooks_.subject_full() : 0; cap != 0) {
    if (config_.metrics != nullptr) config_.metrics->on_tunnel_refused(TunnelRefusal::kSubjectCap);
    refuse(id, raw_host, refusal::kLimit,
           "at most " + std::to_string(cap) + " tunnels per token subject on this edge (" +
               log_text(claims_.subject, 64) + ")");
    return;
  }
  for (const auto& [other_id, tunnel] : tunnels_) {
    if (tunnel.hostname == hostname && tunnel.type == route_type) {
      refuse(id, raw_host, refusal::kTaken, hostname + " is already registered on this session");
      return;
    }
  }
  // Held as registered from now on (duplicates and the limit count it); answered when the table is.
  const uint64_t claim = ++last_claim_;
  tunnels_[id] =
      Tunnel{hostname, claim, route_type,
             reg.visitor.empty()   ? nullptr
             : config_.visitor_env ? std::make_shared<VisitorGate>(reg.visitor, config_.visitor_env)
                                   : std::make_shared<VisitorGate>(reg.visitor)};
  pending_claims_[claim] = PendingClaim{id, hostname, raw_host, reg};
  count_tunnels();
  routes_.claim(route_key(tunnels_[id]), RouteLease{owner_, config_.edge_id, lease_ttl()}, id, now(),
                [this, alive = std::weak_ptr<int>(alive_), claim](const ClaimReply& reply) {
                  if (!alive.expired()) on_claimed(claim, reply);
                });
}

void AgentSession::on_claimed(uint64_t claim, const ClaimReply& reply) {
  auto pending = pending_claims_.find(claim);
  if (closed_ || pending == pending_claims_.end()) return;
  const PendingClaim c = std::move(pending->second);
  pending_claims_.erase(pending);
  auto tunnel = tunnels_.find(c.id);
  const bool current = tunnel != tunnels_.end() && tunnel->second.claim == claim;  // not unregistered
  if (reply.result != ClaimResult::kOk) {
    // A copy: the view goes with the holder's route when it hands it over.
    const std::string holder =
        reply.result == ClaimResult::kTaken ? std::string(reply.holder) : std::string();
    if (reply.result == ClaimResult::kTaken && current && !c.handed_over && holder != owner_ &&
        hooks_.hand_over) {
      switch (hooks_.hand_over(holder, route_key(tunnel->second), claim)) {
        case HandOver::kDone:
          claim_again(claim, c, holder);
          return;
        case HandOver::kAsked:
          awaiting_hand_over_.emplace(claim, std::make_pair(c, holder));
          return;
        case HandOver::kRefused:
          break;
      }
    }
    refuse_claim(claim, c, reply.result, holder);
    return;
  }
  // Answered even when an UNREGISTER came meanwhile: the claim did succeed, and the release follows.
  if (current) tunnel->second.claim = 0;
  if (c.reg.type == kTcp || c.reg.type == kUdp) {
    if (!current) return;  // unregistered meanwhile: no port for it
    const TcpPublishRequest request{serial_, c.id, c.hostname, c.reg.remote_port, c.reg.private_only};
    const TcpPublishResult p =
        c.reg.type == kTcp ? config_.tcp->publish(request) : config_.udp->publish(request);
    if (!p.ok) {
      routes_.release(route_key(tunnel->second), owner_, now());
      tunnels_.erase(tunnel);
      count_tunnels();
      refuse(c.id, c.raw_host, p.code, p.message);
      return;
    }
    spdlog::info("tunnel {}: registered {} {} (id {}) -> {}", owner_, c.reg.type, c.hostname, c.id, p.url);
    send_control(tunnel::Registered{c.id, c.hostname, p.url});
    return;
  }
  std::string url = config_.public_scheme + "://" + c.hostname;
  const uint16_t default_port = config_.public_scheme == "http" ? 80 : 443;
  if (config_.public_port != default_port) url += ":" + std::to_string(config_.public_port);
  url += "/";
  if (current && tunnel->second.visitor) {
    const auto& p = tunnel->second.visitor->policy();
    spdlog::info(
        "tunnel {}: registered {} (id {}) -> {} (visitor auth: {} basic user(s), {} token key(s), {} allowed "
        "and {} denied range(s){})",
        owner_, c.hostname, c.id, url, p.basic.size(), p.token_keys.size(), p.allow.size(), p.deny.size(),
        p.challenge ? ", browser check" : "");
  } else {
    spdlog::info("tunnel {}: registered {} (id {}) -> {}", owner_, c.hostname, c.id, url);
  }
  send_control(tunnel::Registered{c.id, c.hostname, url});
}

void AgentSession::handle_unregister(const tunnel::Unregister& unreg) {
  auto it = tunnels_.find(unreg.id);
  if (it == tunnels_.end()) return;  // idempotent
  // Issued after the claim even if that is still under way, so it releases what the claim takes.
  routes_.release(route_key(it->second), owner_, now());
  unpublish(unreg.id, it->second);
  spdlog::info("tunnel {}: unregistered {} (id {})", owner_, it->second.hostname, unreg.id);
  tunnels_.erase(it);
  count_tunnels();
}

void AgentSession::claim_again(uint64_t claim, PendingClaim c, const std::string& holder) {
  auto tunnel = tunnels_.find(c.id);
  if (tunnel == tunnels_.end() || tunnel->second.claim != claim) return;
  spdlog::info("tunnel {}: {} handed over from {} (the same agent's older session)", owner_, c.hostname,
               log_text(holder, 64));
  const uint64_t again = ++last_claim_;
  tunnel->second.claim = again;
  c.handed_over = true;
  pending_claims_[again] = std::move(c);
  routes_.claim(route_key(tunnel->second), RouteLease{owner_, config_.edge_id, lease_ttl()},
                pending_claims_[again].id, now(),
                [this, alive = std::weak_ptr<int>(alive_), again](const ClaimReply& r) {
                  if (!alive.expired()) on_claimed(again, r);
                });
}

void AgentSession::refuse_claim(uint64_t claim, const PendingClaim& c, ClaimResult result,
                                const std::string& holder) {
  if (auto tunnel = tunnels_.find(c.id); tunnel != tunnels_.end() && tunnel->second.claim == claim) {
    tunnels_.erase(tunnel);
    count_tunnels();
  }
  if (result == ClaimResult::kFull) {
    if (config_.metrics != nullptr) config_.metrics->on_tunnel_refused(TunnelRefusal::kTableFull);
    refuse(c.id, c.raw_host, refusal::kLimit, "the edge's route table is full");
    return;
  }
  refuse(c.id, c.raw_host, refusal::kTaken, c.hostname + " is served by another agent");
  if (hooks_.on_name_contended && holder != owner_) hooks_.on_name_contended(holder);
}

void AgentSession::hand_over_answered(uint64_t claim, bool handed) {
  auto it = awaiting_hand_over_.find(claim);
  if (it == awaiting_hand_over_.end()) return;
  auto [c, holder] = std::move(it->second);
  awaiting_hand_over_.erase(it);
  auto tunnel = tunnels_.find(c.id);
  if (closed_ || tunnel == tunnels_.end() || tunnel->second.claim != claim) return;  // unregistered meanwhile
  if (handed) {
    claim_again(claim, std::move(c), holder);
    return;
  }
  refuse_claim(claim, c, ClaimResult::kTaken, holder);
}

bool AgentSession::hand_over(RouteKey key) {
  if (closed_) return false;
  for (auto it = tunnels_.begin(); it != tunnels_.end(); ++it) {
    if (it->second.type != key.type || it->second.hostname != key.name) continue;
    routes_.release(route_key(it->second), owner_, now());
    unpublish(it->first, it->second);
    spdlog::info("tunnel {}: handed {} {} (id {}) over to the agent's newer session", owner_, it->second.type,
                 it->second.hostname, it->first);
    tunnels_.erase(it);
    count_tunnels();
    return true;
  }
  return false;
}

void AgentSession::unpublish(uint32_t id, const Tunnel& t) {
  if (t.type == kTcp && config_.tcp != nullptr) config_.tcp->unpublish(serial_, id);
  if (t.type == kUdp && config_.udp != nullptr) config_.udp->unpublish(serial_, id);
}

void AgentSession::send_control(const tunnel::ControlMessage& message) {
  if (closed_ || session_ == nullptr || !control_) return;
  const std::vector<uint8_t> frame = tunnel::encode(message);
  std::span<const uint8_t> rest(frame);
  if (control_out_.empty()) rest = rest.subspan(session_->write(*control_, rest, false));
  if (rest.empty()) return;
  if (control_out_.size() + rest.size() > config_.max_control_backlog) {
    close(tunnel::kCloseProtocolError, "the agent does not read its control stream");
    return;
  }
  control_out_.insert(control_out_.end(), rest.begin(), rest.end());
}

void AgentSession::flush_control() {
  if (closed_ || session_ == nullptr || !control_ || control_out_.empty()) return;
  const size_t n = session_->write(*control_, control_out_, false);
  control_out_.erase(control_out_.begin(), control_out_.begin() + static_cast<ptrdiff_t>(n));
}

// --- request streams ------------------------------------------------------------------------------

}  // namespace wtmesh::edge
