#include "edge/browser_connect.h"

#include <spdlog/spdlog.h>

#include "edge/http_codec.h"
#include "edge/route_table.h"
#include "edge/tunnel_service.h"
#include "tunnel/token.h"
#include "tunnel/wire.h"

namespace wtmesh::edge {

using tunnel::ConnectStatus;

struct BrowserLink {
  wt::Session* session = nullptr;  // null once the session closed
  std::map<wt::StreamId, WtStreamEnd*> ends;
};

// --- WtStreamEnd ----------------------------------------------------------------------------------

WtStreamEnd::WtStreamEnd(std::shared_ptr<BrowserLink> link, wt::StreamId id)
    : link_(std::move(link)), id_(id) {
  link_->ends[id_] = this;
}

WtStreamEnd::~WtStreamEnd() {
  abandon(kBrowserStreamAborted);
  if (auto it = link_->ends.find(id_); it != link_->ends.end() && it->second == this) link_->ends.erase(it);
}

wt::Session* WtStreamEnd::session() const {
  auto it = link_->ends.find(id_);
  return it != link_->ends.end() && it->second == this ? link_->session : nullptr;
}

void WtStreamEnd::refuse(uint32_t code) { abandon(code); }

void WtStreamEnd::abandon(uint32_t code) {
  if (done_) return;
  done_ = true;
  if (wt::Session* s = session()) {
    // Bytes arrived but not written onward still owe the connection their flow-control credit.
    s->consume(id_, inbox_.take_owed());
    s->reset_stream(id_, code);
    s->stop_sending(id_, code);
  }
}

void WtStreamEnd::attach(std::weak_ptr<Sink> sink) {
  sink_ = std::move(sink);
  if (failed_) {
    if (auto s = sink_.lock()) s->on_end_failed(*this);
  }
}

void WtStreamEnd::on_data(std::span<const uint8_t> data, bool fin) {
  if (done_) {
    if (wt::Session* s = session()) s->consume(id_, data.size());
    return;
  }
  inbox_.push(data, fin);
  deliver();
}

void WtStreamEnd::read() {
  inbox_.want();
  deliver();
}

void WtStreamEnd::deliver() {
  auto sink = sink_.lock();
  if (done_ || failed_ || !sink) return;
  inbox_.deliver(*this, *sink);
}

void WtStreamEnd::release() {
  const size_t credit = inbox_.release();
  if (wt::Session* s = session(); s != nullptr && credit > 0) s->consume(id_, credit);
}

void WtStreamEnd::write(std::span<const uint8_t> data) {
  pending_ = data;
  writing_ = true;
  flush();
}

void WtStreamEnd::flush() {
  wt::Session* s = session();
  if (done_ || failed_ || s == nullptr || sink_.expired()) return;
  if (writing_) {
    while (!pending_.empty()) {
      const size_t n = s->write(id_, pending_, false);
      if (n == 0) return;  // on_stream_writable follows
      pending_ = pending_.subspan(n);
    }
    writing_ = false;
    if (auto sink = sink_.lock()) sink->on_end_written(*this);
    return;
  }
  if (fin_due_ && !fin_sent_) {
    fin_sent_ = true;
    s->write(id_, {}, true);
  }
}

void WtStreamEnd::shutdown() {
  fin_due_ = true;
  flush();
}

void WtStreamEnd::reset() { abandon(kBrowserStreamAborted); }

void WtStreamEnd::close() { done_ = true; }

void WtStreamEnd::on_failed() {
  if (done_ || failed_) return;
  failed_ = true;
  if (auto s = sink_.lock()) s->on_end_failed(*this);
}

// --- BrowserSession ------------------------------------------------------------------------------

namespace {

class WtConnectClient final : public ConnectClient {
 public:
  explicit WtConnectClient(std::unique_ptr<WtStreamEnd> end) : end_(std::move(end)) {}
  bool gone() const override { return end_->failed(); }
  void refuse(ConnectStatus status, const std::string& /*message*/) override {
    end_->refuse(stream_code_of(status));
  }
  std::unique_ptr<BridgeEnd> connected() override { return std::move(end_); }

 private:
  std::unique_ptr<WtStreamEnd> end_;
};

}  // namespace

BrowserSession::BrowserSession(ConnectBridges& bridges, UdpConnects* udp, std::string name,
                               std::string subject, std::chrono::system_clock::time_point expires,
                               size_t max_streams, std::shared_ptr<BrowserTelemetry> telemetry)
    : bridges_(bridges),
      udp_(udp),
      name_(std::move(name)),
      subject_(std::move(subject)),
      expires_(expires),
      max_streams_(max_streams),
      link_(std::make_shared<BrowserLink>()),
      telemetry_(std::move(telemetry)) {
  if (telemetry_) telemetry_key_ = telemetry_->add_session(subject_);
}

BrowserSession::~BrowserSession() {
  if (!closed_) on_closed(0, "edge gone");
}

size_t BrowserSession::stream_count() const { return link_->ends.size(); }

void BrowserSession::on_attached(wt::Session& session) { link_->session = &session; }

void BrowserSession::on_tick(std::chrono::system_clock::time_point now) {
  if (closed_ || link_->session == nullptr || now < expires_) return;
  spdlog::info("browser {}: connect {}: the token expired; closing the session", subject_, name_);
  link_->session->close(kBrowserCloseTokenExpired, "token expired");
}

void BrowserSession::on_incoming_stream(wt::StreamId id, bool bidi) {
  wt::Session* s = link_->session;
  if (s == nullptr) return;
  if (!bidi) {
    // Uni streams carry the page's telemetry reports, a few at once at most.
    if (!telemetry_) return s->stop_sending(id, stream_code_of(ConnectStatus::kInvalid));
    if (!reports_.open(id)) return s->stop_sending(id, stream_code_of(ConnectStatus::kLimit));
    return;
  }
  if (link_->ends.size() >= max_streams_) {
    spdlog::info("browser {}: connect {}: refused a stream: this session holds {} connections, its limit",
                 subject_, name_, max_streams_);
    s->reset_stream(id, stream_code_of(ConnectStatus::kLimit));
    s->stop_sending(id, stream_code_of(ConnectStatus::kLimit));
    return;
  }
  if (std::chrono::system_clock::now() >= expires_) {
    s->reset_stream(id, stream_code_of(ConnectStatus::kNotInScope));
    s->stop_sending(id, stream_code_of(ConnectStatus::kNotInScope));
    return;
  }
  bridges_.connect(std::make_unique<WtConnectClient>(std::make_unique<WtStreamEnd>(link_, id)), name_);
}

void BrowserSession::on_stream_data(wt::StreamId id, std::span<const uint8_t> data, bool fin) {
  if (reports_.has(id)) {
    tunnel::TelemetryReport report;
    std::string error;
    const auto result = reports_.on_data(id, data, fin, &report, &error);
    if (link_->session != nullptr) link_->session->consume(id, data.size());
    if (result == TelemetryStreams::Result::kReport) {
      telemetry_->on_report(telemetry_key_, std::move(report), std::chrono::steady_clock::now());
    } else if (result == TelemetryStreams::Result::kRefused) {
      spdlog::info("browser {}: connect {}: refused {}", subject_, name_, error);
      telemetry_->on_invalid();
      if (link_->session != nullptr)
        link_->session->stop_sending(id, stream_code_of(ConnectStatus::kInvalid));
    }
    return;
  }
  auto it = link_->ends.find(id);
  if (it == link_->ends.end()) {
    if (link_->session != nullptr) link_->session->consume(id, data.size());  // refused: dropped
    return;
  }
  it->second->on_data(data, fin);
}

void BrowserSession::on_stream_reset(wt::StreamId id, std::optional<uint32_t> /*code*/) {
  reports_.forget(id);
  if (auto it = link_->ends.find(id); it != link_->ends.end()) it->second->on_failed();
}

void BrowserSession::on_stop_sending(wt::StreamId id, std::optional<uint32_t> /*code*/) {
  if (auto it = link_->ends.find(id); it != link_->ends.end()) it->second->on_failed();
}

void BrowserSession::on_stream_writable(wt::StreamId id) {
  if (auto it = link_->ends.find(id); it != link_->ends.end()) it->second->on_writable();
}

void BrowserSession::on_stream_closed(wt::StreamId id) {
  // The transport forgot the id (CVE-2026-21438: no state for closed streams); the end, if its
  // bridge still holds it, reaches the session no more.
  link_->ends.erase(id);
  reports_.forget(id);
}

void BrowserSession::on_datagram(std::span<const uint8_t> payload) {
  if (closed_) return;
  if (udp_ == nullptr) {
    ++dropped_;
    return;
  }
  if (udp_open_) return send_udp(payload);
  if (udp_handle_ == 0) {
    const auto now = std::chrono::steady_clock::now();
    if (udp_refused_at_ && now - *udp_refused_at_ < kRetryAfter) {
      ++dropped_;
      return;
    }
    udp_refused_at_.reset();
    udp_handle_ = udp_->open(name_, this);  // answered later, never inside open()
  }
  if (held_.size() >= kMaxHeldDatagrams || held_bytes_ + payload.size() > kMaxHeldBytes) {
    ++dropped_;
    return;
  }
  held_.emplace_back(payload.begin(), payload.end());
  held_bytes_ += payload.size();
}

void BrowserSession::send_udp(std::span<const uint8_t> payload) {
  // Not sent (too big, no room: counted per tunnel by UdpTunnels; the flow just ended: opened again
  // by the next datagram) is dropped: nothing is queued.
  if (udp_->send(udp_handle_, payload) != UdpConnects::Send::kSent) ++dropped_;
}

void BrowserSession::on_udp_open(ConnectStatus status, std::string_view message) {
  if (status != ConnectStatus::kConnected) {
    spdlog::info("browser {}: connect {}: datagrams go nowhere: {} ({})", subject_, name_, message,
                 tunnel::to_string(status));
    udp_handle_ = 0;
    udp_refused_at_ = std::chrono::steady_clock::now();
    dropped_ += held_.size();
    held_.clear();
    held_bytes_ = 0;
    return;
  }
  udp_open_ = true;
  auto held = std::exchange(held_, {});
  held_bytes_ = 0;
  for (const auto& d : held) {
    if (!udp_open_) {
      ++dropped_;
      continue;
    }
    send_udp(d);
  }
}

void BrowserSession::on_udp_packet(std::span<const uint8_t> payload) {
  wt::Session* s = link_->session;
  if (s == nullptr) return;
  if (payload.size() > s->max_datagram_size()) {
    udp_->count_client_drop(&tunnel::UdpDropCounters::too_big);
  } else if (!s->send_datagram(payload)) {
    udp_->count_client_drop(&tunnel::UdpDropCounters::queue_full);
  }
}

void BrowserSession::on_udp_end(std::string_view why) {
  spdlog::debug("browser {}: connect {}: udp flow ended: {}", subject_, name_, why);
  udp_handle_ = 0;
  udp_open_ = false;
}

void BrowserSession::on_closed(uint32_t code, std::string_view reason) {
  if (closed_) return;
  closed_ = true;
  spdlog::info("browser {}: connect {}: session closed code={} reason=\"{}\"", subject_, name_, code,
               reason.substr(0, 128));
  link_->session = nullptr;
  if (telemetry_) telemetry_->remove_session(telemetry_key_);
  if (udp_handle_ != 0) udp_->close(std::exchange(udp_handle_, 0));
  udp_open_ = false;
  held_.clear();
  // The bridges abort; their ends find no session to reset.
  const auto ends = std::exchange(link_->ends, {});
  for (const auto& [id, end] : ends) end->on_failed();
}

// --- BrowserConnect ------------------------------------------------------------------------------

namespace {

wt::Accept refused_accept(int status, const std::string& why) {
  return wt::Accept{status, nullptr, {{std::string(tunnel::kErrorHeader), sanitize_header_value(why)}}};
}

}  // namespace

BrowserConnect::BrowserConnect(TunnelService& tunnels, TunnelDirectory& directory, ConnectBridges& bridges,
                               UdpConnects* udp, BrowserConnectOptions options)
    : tunnels_(tunnels),
      directory_(directory),
      bridges_(bridges),
      udp_(udp),
      options_(std::move(options)),
      telemetry_(std::make_shared<BrowserTelemetry>(options_.metrics)) {}

wt::Accept BrowserConnect::accept(const wt::SessionInfo& info,
                                  std::vector<std::unique_ptr<BrowserSession>>& sessions) {
  std::erase_if(sessions, [](const auto& s) { return s->closed(); });
  const std::string from = info.peer.empty() ? std::string("?") : info.peer;
  int status = 0;
  std::string error;
  const auto request = parse_browser_connect_path(info.path, options_.domain, &status, &error);
  auto refuse = [&](int st, const std::string& name, const std::string& why) {
    // The name and the reason only: the path carries the token.
    spdlog::info("browser: refused session from {} origin=\"{}\" to {}: {} {}", from,
                 info.origin.substr(0, 128), name.substr(0, 64), st, why);
    return refused_accept(st, why);
  };
  if (!request) return refuse(status, "?", error);
  const tunnel::VerifyResult result = tunnels_.verify(request->token);
  if (!result.ok())
    return refuse(401, request->name, std::string("invalid token: ") + tunnel::to_string(result.error()));
  const tunnel::TokenClaims& claims = result.claims();
  if (!tunnel::token_may_connect(claims, request->name)) {
    return refuse(http_status_of(ConnectStatus::kNotInScope), request->name, "not in token scope");
  }
  if (!bridges_.has_route(request->name) && !(udp_ != nullptr && udp_->has_route(request->name))) {
    struct Inline final : RouteEvents {
      std::optional<RouteLookup> answer;
      void on_route(const RouteLookup& r) override { answer = r; }
    };
    auto kind_of = [&](std::string_view type) -> std::optional<RouteLookup::Kind> {
      Inline lookup;
      const uint64_t ticket = directory_.route_of(type, request->name, &lookup);
      if (ticket != 0) {
        // A shared store, or another worker, answers later: each stream asks again.
        directory_.cancel_route(ticket);
        return std::nullopt;
      }
      return lookup.answer ? lookup.answer->kind : RouteLookup::Kind::kUnknown;
    };
    const auto tcp = kind_of(kTcp);
    const auto udp = kind_of(kUdp);
    auto is = [](const std::optional<RouteLookup::Kind>& k, RouteLookup::Kind want) {
      return k && *k == want;
    };
    if (is(tcp, RouteLookup::Kind::kUnknown) && is(udp, RouteLookup::Kind::kUnknown)) {
      return refuse(http_status_of(ConnectStatus::kUnknown), request->name,
                    "no tunnel or route is named " + request->name);
    }
    if (!is(tcp, RouteLookup::Kind::kFound) && !is(udp, RouteLookup::Kind::kFound) && tcp && udp) {
      return refuse(http_status_of(ConnectStatus::kOffline), request->name,
                    request->name + ": its agent is not connected");
    }
  }
  spdlog::info("browser {}: connect {}: session opened from {} origin=\"{}\"", claims.subject, request->name,
               from, info.origin.substr(0, 128));
  sessions.push_back(std::make_unique<BrowserSession>(bridges_, udp_, request->name, claims.subject,
                                                      claims.expires_at, options_.max_streams, telemetry_));
  return {200, sessions.back().get(), {}};
}

}  // namespace wtmesh::edge
