#include "edge/tunnel_service.h"

#include <gnutls/crypto.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>

#include "common/log_text.h"
#include "common/text.h"
#include "edge/http_codec.h"

namespace wtmesh::edge {
std::string random_edge_id() {
  std::array<uint8_t, 6> b{};
  gnutls_rnd(GNUTLS_RND_NONCE, b.data(), b.size());
  static const char* hex = "0123456789abcdef";
  std::string out = "edge-";
  for (uint8_t x : b) {
    out += hex[x >> 4];
    out += hex[x & 15];
  }
  return out;
}

namespace {

bool offers_version(const wt::SessionInfo& info, int version) {
  const std::string want = std::to_string(version);
  for (const auto& [name, value] : info.headers) {
    if (name != tunnel::kProtocolHeader) continue;
    std::string_view v = value;
    while (!v.empty()) {
      const size_t comma = v.find(',');
      if (trim(v.substr(0, comma)) == want) return true;
      if (comma == std::string_view::npos) break;
      v.remove_prefix(comma + 1);
    }
  }
  return false;
}

const std::string* header(const wt::SessionInfo& info, std::string_view name) {
  for (const auto& [n, v] : info.headers) {
    if (n == name) return &v;
  }
  return nullptr;
}

SessionRefusal refusal_of(tunnel::TokenError e) {
  switch (e) {
    case tunnel::TokenError::kMalformed:
      return SessionRefusal::kMalformed;
    case tunnel::TokenError::kUnsupportedAlg:
      return SessionRefusal::kUnsupportedAlg;
    case tunnel::TokenError::kUnknownKey:
      return SessionRefusal::kUnknownKey;
    case tunnel::TokenError::kBadSignature:
      return SessionRefusal::kBadSignature;
    case tunnel::TokenError::kExpired:
      return SessionRefusal::kExpired;
    case tunnel::TokenError::kNotYetValid:
      return SessionRefusal::kNotYetValid;
    case tunnel::TokenError::kWrongAudience:
      return SessionRefusal::kWrongAudience;
    case tunnel::TokenError::kRevoked:
      return SessionRefusal::kRevoked;
    case tunnel::TokenError::kReplayed:
      return SessionRefusal::kReplayed;
  }
  return SessionRefusal::kMalformed;
}

wt::Accept refuse(int status, const std::string& why) {
  return wt::Accept{status, nullptr, {{std::string(tunnel::kErrorHeader), sanitize_header_value(why)}}};
}

// What per-address limits count: the address (IPv6: its /64), or the text as given.
std::string address_key(const std::string& peer) {
  boost::system::error_code ec;
  const auto address = boost::asio::ip::make_address(peer, ec);
  return ec ? peer : client_limit_key(address);
}

}  // namespace

TunnelService::TunnelService(TunnelServiceConfig config, RouteTable& routes, tunnel::VerifierKeySet keys)
    : config_(std::move(config)),
      routes_(routes),
      keys_(std::move(keys)),
      auth_failures_(config_.shared_auth_failures
                         ? config_.shared_auth_failures
                         : std::make_shared<AuthFailureLimiter>(config_.auth_failures)),
      subjects_(config_.subjects ? config_.subjects : std::make_shared<SubjectLedger>()),
      returned_(config_.returned ? config_.returned : std::make_shared<ReturnedAgents>()) {
  if (config_.edge_id.empty()) config_.edge_id = random_edge_id();
  if (!config_.jtis) config_.jtis = std::make_shared<JtiCache>();
  config_.session.edge_id = config_.edge_id;
  if (!config_.session.visitor_env) {
    config_.session.visitor_env = std::make_shared<VisitorEnvironment>(config_.auth_failures);
    config_.session.visitor_env->metrics = config_.session.metrics;
  }
  check_revocations();
}

TunnelService::~TunnelService() = default;

SteadyTime TunnelService::steady_now() const {
  return config_.session.clock ? config_.session.clock() : std::chrono::steady_clock::now();
}

std::chrono::system_clock::time_point TunnelService::wall_now() const {
  return config_.wall_clock ? config_.wall_clock() : std::chrono::system_clock::now();
}

tunnel::VerifyResult TunnelService::verify_with_keys(std::string_view token, bool session_token) {
  auto check = [&] {
    return session_token ? tunnel::verify_session_token(token, keys_, wall_now(), config_.session_token_ttl,
                                                        config_.token_leeway)
                         : keys_.verify(token, wall_now(), config_.token_leeway);
  };
  auto result = check();
  if (!result.ok() && result.error() == tunnel::TokenError::kUnknownKey && config_.reload_keys) {
    const SteadyTime t = steady_now();
    if (!last_key_reload_ || t - *last_key_reload_ >= kKeyReloadInterval) {
      last_key_reload_ = t;
      try {
        keys_ = config_.reload_keys();
        spdlog::info("tunnel: reloaded verifier keys ({} accepted)", keys_.size());
        result = check();
      } catch (const std::exception& e) {
        spdlog::error("tunnel: cannot reload verifier keys: {}", e.what());
      }
    }
  }
  return result;
}

void TunnelService::auth_failed(const std::string& key, const std::string& from) {
  if (!auth_failures_->on_failure(key, steady_now())) return;
  spdlog::warn(
      "tunnel: {} ran out of authentication attempts ({} failures at once, one back every {:.1f} s); "
      "its session requests get 429 until then",
      from, config_.auth_failures.burst, 1.0 / config_.auth_failures.per_second);
}

tunnel::VerifyResult TunnelService::verify(std::string_view token) {
  if (!tunnel::is_session_token(token)) return verify_with_keys(token, false);
  auto result = verify_with_keys(token, true);
  if (!result.ok()) return result;
  const tunnel::TokenClaims& c = result.claims();
  // The file is looked at for every session token that verifies (a stat; the signature check that
  // came first costs far more): a credential revoked a moment ago is refused at once, on every
  // worker, not after the next periodic check. Its live sessions close at the next tick, outside
  // this accept.
  if (reload_revocations()) close_revoked_due_ = true;
  if (revoked_.contains(c.credential_id)) {
    return tunnel::VerifyResult::failure(tunnel::TokenError::kRevoked,
                                         "credential " + c.credential_id + " was revoked");
  }
  const auto now = wall_now();
  switch (config_.jtis->admit(c.id, now, c.expires_at + config_.token_leeway, config_.max_replay_entries)) {
    case JtiCache::Result::kNew:
      return result;
    case JtiCache::Result::kReplayed:
      return tunnel::VerifyResult::failure(
          tunnel::TokenError::kReplayed,
          "session token " + c.id + " of credential " + c.credential_id + " was used already");
    case JtiCache::Result::kFull:
      break;
  }
  return tunnel::VerifyResult::failure(tunnel::TokenError::kReplayed,
                                       "the edge's replay cache is full; try again later");
}

SteadyTime TunnelService::deadline_of(std::chrono::system_clock::time_point exp) const {
  const auto left = exp + config_.token_leeway - wall_now();
  return steady_now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(left);
}

RenewOutcome TunnelService::renew(const AgentSession& session, const std::string& token) {
  RenewOutcome out;
  const tunnel::TokenClaims& had = session.claims();
  if (had.credential_id.empty()) {
    out.error = "the session was opened with a plain token; only sessions of a credential renew";
    return out;
  }
  if (!tunnel::is_session_token(token)) {
    out.error = "not a session token of a credential";
    return out;
  }
  const tunnel::VerifyResult r = verify(token);
  if (!r.ok()) {
    count_refusal(refusal_of(r.error()));
    out.error = std::string("invalid token: ") + tunnel::to_string(r.error()) + ": " + r.message();
    return out;
  }
  const tunnel::TokenClaims& c = r.claims();
  if (c.credential_id != had.credential_id || c.subject != had.subject) {
    out.error = "the token is for another credential than the session's";
    return out;
  }
  if (c.hosts != had.hosts || c.connect != had.connect) {
    out.error = "the token's scope differs from the session's";
    return out;
  }
  out.claims = c;
  out.deadline = deadline_of(c.expires_at);
  return out;
}

void TunnelService::check_revocations() {
  if (reload_revocations()) close_revoked();
}

bool TunnelService::reload_revocations() {
  if (!config_.revocation_file) return false;
  std::error_code ec;
  const auto mtime = std::filesystem::last_write_time(*config_.revocation_file, ec);
  const uintmax_t size = ec ? 0 : std::filesystem::file_size(*config_.revocation_file, ec);
  if (ec) {
    if (!revocation_mtime_ && revoked_.empty()) return false;  // no file, none revoked
    revocation_mtime_.reset();
    revocation_size_ = 0;
  } else if (revocation_mtime_ && *revocation_mtime_ == mtime && revocation_size_ == size) {
    return false;  // unchanged
  }
  try {
    revoked_ = tunnel::RevocationList::load(*config_.revocation_file);
    if (!ec) {
      revocation_mtime_ = mtime;
      revocation_size_ = size;
    }
    spdlog::info("tunnel: revocation list loaded: {} credential(s) revoked", revoked_.size());
  } catch (const std::exception& e) {
    spdlog::error("tunnel: cannot load the revocation list (keeping the previous one): {}", e.what());
    return false;
  }
  return true;
}

void TunnelService::close_revoked() {
  close_revoked_due_ = false;
  std::vector<AgentSession*> hit;
  for (auto& [serial, s] : sessions_) {
    if (!s->closed() && !s->claims().credential_id.empty() && revoked_.contains(s->claims().credential_id))
      hit.push_back(s.get());
  }
  for (AgentSession* s : hit) {
    spdlog::info("tunnel {}: credential {} was revoked; closing the session", s->owner(),
                 s->claims().credential_id);
    s->close(tunnel::kCloseCredentialRevoked, "credential revoked");
  }
}

wt::Accept TunnelService::accept(const wt::SessionInfo& info) {
  collect();
  const std::string from = info.peer.empty() ? std::string("?") : info.peer;
  const std::string key = address_key(info.peer);
  if (!auth_failures_->allowed(key, steady_now())) {
    // No verification and no log line: the address was logged when it ran out.
    count_refusal(SessionRefusal::kRateLimited);
    return refuse(429, "too many authentication failures from this address; retry later");
  }
  if (draining_) {
    // Before any verification: the agent is told to try another edge (its backoff paces it). An
    // agent whose new session comes back here (one edge, no other address) has nowhere to move:
    // the handoff stops waiting for its live session (on whichever worker holds it), which serves on
    // until the edge closes it. (The instance id is not a credential; a forged one only ends that
    // session's handoff early.)
    if (const std::string* instance = header(info, tunnel::kInstanceHeader);
        instance != nullptr && tunnel::valid_instance_id(*instance) && returned_->add(*instance)) {
      spdlog::info("tunnel: agent instance {} came back to this draining edge: nowhere else to move",
                   *instance);
    }
    count_refusal(SessionRefusal::kDraining);
    return refuse(503, "draining: this edge is shutting down; connect to another edge");
  }
  const std::string* auth = header(info, "authorization");
  const auto token = auth ? tunnel::parse_bearer(*auth) : std::nullopt;
  if (!token) {
    spdlog::info("tunnel: refused session from {} (authority {}): no bearer token", from,
                 log_text(info.authority));
    count_refusal(SessionRefusal::kMissingToken);
    auth_failed(key, from);
    return refuse(401, "missing bearer token");
  }
  const tunnel::VerifyResult result = verify(*token);
  if (!result.ok()) {
    spdlog::info("tunnel: refused session from {}: token {}: {}", from, tunnel::to_string(result.error()),
                 result.message());
    count_refusal(refusal_of(result.error()));
    auth_failed(key, from);
    // A credential's session token gets the verifier's sentence (it names only checked ids and
    // numbers): the agent can say why (revoked, lifetime over this edge's maximum, ...).
    std::string why = std::string("invalid token: ") + tunnel::to_string(result.error());
    if (tunnel::is_session_token(*token)) why += ": " + result.message();
    return refuse(401, why);
  }
  const tunnel::TokenClaims& claims = result.claims();
  const std::string domain = lower_ascii(config_.session.domain);
  bool any = false;
  for (const auto& h : claims.hosts) {
    const std::string l = lower_ascii(h);
    any |= l.size() > domain.size() + 1 && l.ends_with("." + domain);
  }
  if (!any) {
    spdlog::info("tunnel: refused session of {} from {}: token names no host under {}", claims.subject, from,
                 domain);
    count_refusal(SessionRefusal::kNoHost);
    return refuse(403, "the token covers no hostname under " + domain);
  }
  if (!offers_version(info, tunnel::kProtocolVersion)) {
    spdlog::info("tunnel: refused session of {} from {}: no common protocol version", claims.subject, from);
    count_refusal(SessionRefusal::kProtocolVersion);
    return refuse(400, "unsupported protocol version");
  }
  // Last: it takes a slot of the edge's and of the subject's, counted across the edge's workers.
  size_t held = 0;
  switch (
      subjects_->add_session(claims.subject, config_.max_sessions_per_subject, config_.max_sessions, &held)) {
    case SubjectLedger::Added::kAdded:
      break;
    case SubjectLedger::Added::kEdgeFull:
      count_refusal(SessionRefusal::kCapacity);
      return refuse(503, "the edge has too many tunnel sessions");
    case SubjectLedger::Added::kSubjectFull:
      spdlog::info("tunnel: refused session of {} from {}: the subject holds {} sessions",
                   log_text(claims.subject, 64), from, held);
      count_refusal(SessionRefusal::kSubjectSessions);
      return refuse(429, "at most " + std::to_string(config_.max_sessions_per_subject) +
                             " sessions per token subject on this edge");
  }

  const uint64_t serial = ++next_serial_;
  const std::string owner = config_.edge_id + "/" + std::to_string(serial);
  const SteadyTime deadline = deadline_of(claims.expires_at);
  AgentSession::Hooks hooks;
  hooks.on_renew = [this](const AgentSession& s, const std::string& token) { return renew(s, token); };
  hooks.on_ended = [this](uint64_t s, const std::vector<std::string>& names) { on_session_ended(s, names); };
  hooks.deadline_moved = [this, serial] { schedule(serial); };
  hooks.on_name_contended = [this](const std::string& holder) {
    if (AgentSession* s = find_owner(holder)) s->probe();
  };
  hooks.subject_full = [this, subject = claims.subject] { return subject_full(subject); };
  hooks.tunnels_changed = [ledger = subjects_, subject = claims.subject](size_t before, size_t after) {
    ledger->tunnels_changed(subject, before, after);
  };
  hooks.hand_over = [this, serial](const std::string& holder, RouteKey key,
                                   uint64_t claim) -> AgentSession::HandOver {
    using HandOver = AgentSession::HandOver;
    auto to = sessions_.find(serial);
    if (to == sessions_.end() || to->second->instance().empty()) return HandOver::kRefused;
    const AgentSession& next = *to->second;
    if (find_owner(holder) != nullptr)
      return hand_over_to(holder, key, next.instance(), next.claims().subject) ? HandOver::kDone
                                                                               : HandOver::kRefused;
    if (!remote_hand_over_) return HandOver::kRefused;
    auto answered = [this, serial, claim](bool handed) {
      if (AgentSession* s = find_session(serial)) s->hand_over_answered(claim, handed);
    };
    return remote_hand_over_(holder, std::string(key.type), std::string(key.name), next.instance(),
                             next.claims().subject, std::move(answered))
               ? HandOver::kAsked
               : HandOver::kRefused;
  };
  auto session = std::make_unique<AgentSession>(config_.session, routes_, serial, owner, claims, deadline,
                                                std::move(hooks));
  AgentSession* raw = session.get();
  if (const std::string* instance = header(info, tunnel::kInstanceHeader);
      instance != nullptr && tunnel::valid_instance_id(*instance))
    raw->set_instance(*instance);
  sessions_.emplace(serial, std::move(session));
  owners_.emplace(owner, serial);
  schedule(serial);
  spdlog::info("tunnel {}: session accepted for {} from {} (kid {}, hosts {}{}{})", owner, claims.subject,
               from, result.kid(), claims.hosts.size(), claims.credential_id.empty() ? "" : ", credential ",
               claims.credential_id);
  if (wakeup_) wakeup_();
  wt::Accept accept{
      200, raw, {{std::string(tunnel::kProtocolHeader), std::to_string(tunnel::kProtocolVersion)}}};
  // Session features (docs/protocol.md §4.1): the ones the agent offered that this edge speaks.
  if (const std::string* offered = header(info, tunnel::kFeaturesHeader)) {
    std::string both;
    for (const std::string_view f : {tunnel::kFeatureTrailers, tunnel::kFeatureRequestTrailers}) {
      if (!tunnel::has_feature(*offered, f)) continue;
      both += both.empty() ? "" : ", ";
      both += f;
    }
    if (!both.empty()) accept.headers.emplace_back(std::string(tunnel::kFeaturesHeader), both);
    if (tunnel::has_feature(*offered, tunnel::kFeatureRequestTrailers)) raw->use_request_trailers();
  }
  return accept;
}

bool TunnelService::hand_over_to(const std::string& holder, RouteKey key, const std::string& instance,
                                 const std::string& subject) {
  AgentSession* from = find_owner(holder);
  if (from == nullptr || from->closed() || instance.empty() || from->instance() != instance ||
      from->claims().subject != subject)
    return false;
  return from->hand_over(key);
}

void TunnelService::on_session_ended(uint64_t serial, const std::vector<std::string>& /*hostnames*/) {
  // The session released its routes; the table keeps them offline for its grace.
  auto it = sessions_.find(serial);
  if (it == sessions_.end()) return;
  ended_.push_back(serial);
  owners_.erase(it->second->owner());
  subjects_->remove_session(it->second->claims().subject);
}

size_t TunnelService::subject_full(const std::string& subject) const {
  return subjects_->tunnels(subject) >= config_.max_tunnels_per_subject ? config_.max_tunnels_per_subject : 0;
}

void TunnelService::collect() {
  for (const uint64_t serial : std::exchange(ended_, {})) {
    deadlines_.forget(serial);
    if (auto it = sessions_.find(serial); it != sessions_.end() && it->second->closed()) sessions_.erase(it);
  }
}

void TunnelService::schedule(uint64_t serial) {
  auto it = sessions_.find(serial);
  if (it == sessions_.end() || it->second->closed()) return;
  const auto d = it->second->next_deadline();
  if (!d) return;
  const auto before = deadlines_.next();
  if (deadlines_.schedule(serial, *d) && (!before || *d < *before) && wakeup_) wakeup_();
}

std::optional<SteadyTime> TunnelService::next_deadline() const { return deadlines_.next(); }

void TunnelService::on_tick(SteadyTime t) {
  if (!last_revocation_check_ || t - *last_revocation_check_ >= kRevocationCheck) {
    last_revocation_check_ = t;
    check_revocations();
  }
  if (close_revoked_due_) close_revoked();
  // Only the sessions that asked for a tick by now; one whose deadline moved later meanwhile just
  // says when it wants the next.
  for (const uint64_t serial : deadlines_.take_due(t)) {
    auto it = sessions_.find(serial);
    if (it == sessions_.end()) continue;
    AgentSession& s = *it->second;
    if (const auto d = s.next_deadline(); d && *d <= t) s.on_tick(t);
    schedule(serial);
  }
  collect();
  routes_.expire(t);
}

void TunnelService::close_all(uint32_t code, std::string_view reason) {
  std::vector<AgentSession*> live;
  for (auto& [serial, s] : sessions_) live.push_back(s.get());
  for (AgentSession* s : live) s->close(code, reason);
}

void TunnelService::drain() {
  if (draining_) return;
  draining_ = true;
  std::vector<AgentSession*> live;
  for (auto& [serial, s] : sessions_) live.push_back(s.get());
  for (AgentSession* s : live) s->drain();
}

size_t TunnelService::sessions_to_move() const {
  size_t n = 0;
  for (const auto& [serial, s] : sessions_) {
    n += !s->closed() && s->tunnel_count() > 0 && !s->moved() && !returned_->contains(s->instance()) ? 1 : 0;
  }
  return n;
}

size_t TunnelService::session_count() const {
  // The ended ones wait in sessions_ for collect(); each is listed in ended_ once.
  return sessions_.size() - ended_.size();
}

size_t TunnelService::stream_count() const {
  size_t n = 0;
  for (const auto& [serial, s] : sessions_) n += s->closed() ? 0 : s->request_stream_count();
  return n;
}

std::vector<AgentTelemetry> TunnelService::telemetry(SteadyTime now) const {
  std::vector<AgentTelemetry> out;
  for (const auto& [serial, s] : sessions_) {
    if (s->closed() || !s->telemetry()) continue;
    const std::chrono::duration<double> age = now - s->telemetry_at();
    out.push_back({s->claims().subject + "#" + std::to_string(serial), *s->telemetry(), age.count()});
  }
  return out;
}

AgentSession* TunnelService::find_session(uint64_t serial) const {
  auto it = sessions_.find(serial);
  return it == sessions_.end() || it->second->closed() ? nullptr : it->second.get();
}

AgentSession* TunnelService::find_owner(std::string_view owner) const {
  auto it = owners_.find(owner);
  return it == owners_.end() ? nullptr : find_session(it->second);
}

// --- TunnelDirectory ------------------------------------------------------------------------------

uint64_t TunnelService::route_of(std::string_view type, std::string_view host, RouteEvents* events) {
  // An answer that comes inline lands in answered_ and goes to `events` without a map entry.
  const uint64_t ticket = ++last_ticket_;
  asking_ = ticket;
  routes_.lookup(type, host, steady_now(),
                 [this, alive = std::weak_ptr<int>(alive_), ticket](const RouteMatch& match) {
                   if (!alive.expired()) on_lookup(ticket, match);
                 });
  asking_ = 0;
  if (answered_) {
    const RouteLookup r = std::move(*answered_);
    answered_.reset();
    events->on_route(r);
    return 0;
  }
  lookups_.emplace(ticket, events);
  return ticket;
}

void TunnelService::cancel_route(uint64_t ticket) { lookups_.erase(ticket); }

VisitorGate* TunnelService::visitor_gate(const RouteLookup& route) {
  if (route.kind != RouteLookup::Kind::kFound) return nullptr;
  AgentSession* s = find_session(route.session);
  return s == nullptr ? nullptr : s->visitor_gate(route.tunnel_id);
}

void TunnelService::on_lookup(uint64_t ticket, const RouteMatch& match) {
  RouteLookup r;
  r.pattern = std::string(match.pattern);
  if (match.live()) {
    r.tunnel_id = match.tunnel_id;
    if (AgentSession* s = find_owner(match.owner)) {
      r.kind = RouteLookup::Kind::kFound;
      r.session = s->serial();
      r.request_trailers = s->request_trailers();
    } else {
      r.kind = RouteLookup::Kind::kOffline;  // held by a session that is not (or no longer) here
    }
  } else if (match.offline()) {
    r.kind = RouteLookup::Kind::kOffline;
  }
  if (ticket == asking_) {
    answered_ = std::move(r);
    return;
  }
  auto it = lookups_.find(ticket);
  if (it == lookups_.end()) return;  // cancelled
  RouteEvents* events = it->second;
  lookups_.erase(it);
  events->on_route(r);
}

TunnelDirectory::OpenStatus TunnelService::open_request(const RouteLookup& route, std::string_view client,
                                                        RequestStreamEvents* events, StreamRef* out) {
  AgentSession* s = find_session(route.session);
  if (s == nullptr) return OpenStatus::kGone;
  wt::StreamId id = -1;
  const OpenStatus st = s->open_request(client, events, &id);
  if (st == OpenStatus::kOpened) *out = StreamRef{route.session, id, s->request_trailers()};
  return st;
}

size_t TunnelService::write(const StreamRef& ref, std::span<const uint8_t> data, bool fin) {
  AgentSession* s = find_session(ref.session);
  return s ? s->write(ref.id, data, fin) : 0;
}

size_t TunnelService::send_capacity(const StreamRef& ref) {
  AgentSession* s = find_session(ref.session);
  return s ? s->send_capacity(ref.id) : 0;
}

void TunnelService::consume(const StreamRef& ref, size_t n) {
  if (AgentSession* s = find_session(ref.session)) s->consume(ref.id, n);
}

void TunnelService::cancel(const StreamRef& ref, uint32_t code) {
  if (AgentSession* s = find_session(ref.session)) s->cancel(ref.id, code);
}

void TunnelService::release(const StreamRef& ref) {
  if (AgentSession* s = find_session(ref.session)) s->release(ref.id);
}

// --- relayed WebTransport sessions ---------------------------------------------------------------

uint64_t TunnelService::add_relay(const RouteLookup& route, WtRelayPeer* peer) {
  AgentSession* s = find_session(route.session);
  return s == nullptr ? 0 : s->add_relay(peer);
}

bool TunnelService::add_relay_as(const RouteLookup& route, uint64_t relay_id, WtRelayPeer* peer) {
  AgentSession* s = find_session(route.session);
  return s != nullptr && s->add_relay_as(relay_id, peer);
}

void TunnelService::remove_relay(const RouteLookup& route, uint64_t relay_id) {
  if (AgentSession* s = find_session(route.session)) s->remove_relay(relay_id);
}

bool TunnelService::send_relay_datagram(const RouteLookup& route, uint64_t relay_id,
                                        std::span<const uint8_t> payload) {
  AgentSession* s = find_session(route.session);
  return s != nullptr && s->send_relay_datagram(relay_id, payload);
}

}  // namespace wtmesh::edge
